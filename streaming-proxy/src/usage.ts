/**
 * The user's traffic by minute over the last hour and since midnight (UTC), for the console's
 * "My PC" chart, in fixed memory (protocol's MinuteRing) and with nothing on a timer.
 */
import { MINUTE_MS, MinuteRing, WINDOW_MINUTES, type ProxyUsage, type UsageMinute } from '@ctll/protocol';

const DAY_MS = 24 * 60 * MINUTE_MS;

export type UsageKind = 'requests' | 'bytesToDesktop' | 'bytesFromDesktop';
type Counts = Record<UsageKind, number>;

const zero = (): Counts => ({ requests: 0, bytesToDesktop: 0, bytesFromDesktop: 0 });

export class UsageCounter {
  private readonly minutes = new MinuteRing(zero);
  private today: Counts & { day: number } = { day: -1, ...zero() };

  constructor(private readonly startedAt = Date.now()) {}

  add(kind: UsageKind, amount: number, now = Date.now()): void {
    this.minutes.at(now)[kind] += amount;
    const day = Math.floor(now / DAY_MS);
    if (this.today.day !== day) this.today = { day, ...zero() };
    this.today[kind] += amount;
  }

  snapshot(now = Date.now()): ProxyUsage {
    const counted = new Map(this.minutes.recent(now).map(({ at, value }) => [at.getTime(), value]));
    const current = Math.floor(now / MINUTE_MS) * MINUTE_MS;
    const minutes: UsageMinute[] = [];
    // Every minute of the window, quiet ones as zeros: the chart needs no gaps filled.
    for (let at = current - (WINDOW_MINUTES - 1) * MINUTE_MS; at <= current; at += MINUTE_MS) {
      minutes.push({ at: new Date(at).toISOString(), ...(counted.get(at) ?? zero()) });
    }
    const day = Math.floor(now / DAY_MS);
    const today = this.today.day === day ? this.today : zero();
    return {
      today: {
        since: new Date(Math.max(day * DAY_MS, this.startedAt)).toISOString(),
        requests: today.requests,
        bytesToDesktop: today.bytesToDesktop,
        bytesFromDesktop: today.bytesFromDesktop,
      },
      minutes,
    };
  }
}
