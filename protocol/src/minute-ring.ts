/**
 * One slot per minute over the last hour, for counts over time: a user's traffic in their proxy
 * (GET /usage), and the operator's recent errors and proxies-and-desktops chart. A slot left from an earlier hour is reset when its minute comes
 * round again, so memory stays fixed and nothing runs on a timer.
 */
export const MINUTE_MS = 60_000;
export const WINDOW_MINUTES = 60;

export class MinuteRing<T> {
  private readonly slots: Array<{ minute: number; value: T } | undefined> = new Array<undefined>(WINDOW_MINUTES).fill(undefined);

  constructor(private readonly fresh: () => T) {}

  /** The slot of the minute `now` falls in, made fresh when it held an older minute. */
  at(now: number): T {
    const minute = Math.floor(now / MINUTE_MS);
    const index = minute % WINDOW_MINUTES;
    const slot = this.slots[index];
    if (slot?.minute === minute) return slot.value;
    const value = this.fresh();
    this.slots[index] = { minute, value };
    return value;
  }

  /** The slots of the last hour up to `now` that hold something, oldest first, with each minute's start. */
  recent(now: number): Array<{ at: Date; value: T }> {
    const current = Math.floor(now / MINUTE_MS);
    const found: Array<{ at: Date; value: T }> = [];
    for (let minute = current - WINDOW_MINUTES + 1; minute <= current; minute += 1) {
      const slot = this.slots[minute % WINDOW_MINUTES];
      if (slot?.minute === minute) found.push({ at: new Date(minute * MINUTE_MS), value: slot.value });
    }
    return found;
  }
}
