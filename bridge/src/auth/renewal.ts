/**
 * When a transport renews its token: a little before it expires, early enough that a renewal the
 * relay refuses (or that fails on the way) can be tried again before the relay's grace is over.
 */
import type { TokenSource } from './token-source';
import { tokenExpiry } from '../token';

/** Renew this long before expiry at most: a day-long token is renewed a minute ahead, not hours. */
const RENEW_AHEAD_MAX_MS = 60_000;
/** ... and at least this share of what is left ahead, so a 10 s token is renewed 2 s before. */
const RENEW_AHEAD_SHARE = 0.2;
/** Least wait between two renewal attempts (a source that has nothing newer yet). */
const MIN_RENEW_INTERVAL_MS = 1_000;

/** How long to wait before renewing a token that expires at `expiresAt`; undefined: no renewal. */
export function renewalDelay(expiresAt: number | undefined, now = Date.now()): number | undefined {
  if (expiresAt === undefined) return undefined;
  const left = expiresAt - now;
  if (left <= 0) return undefined;
  return Math.max(MIN_RENEW_INTERVAL_MS, left - Math.min(RENEW_AHEAD_MAX_MS, left * RENEW_AHEAD_SHARE));
}

/**
 * One transport's renewal turns: ahead of each expiry it takes the source's current token and, when
 * the source has a newer one than the relay holds, hands it to `deliver` (the WebSocket sends it
 * in-band, long-poll sends a heartbeat with it). Both transports share this; only delivery differs.
 */
export class RenewalTimer {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly tokens: TokenSource,
    /** The token the relay holds now. */
    private readonly current: () => string,
    private readonly deliver: (token: string) => void,
    private readonly notice: (message: string) => void,
  ) {}

  start(): void {
    if (this.stopped) return;
    // Timed by the token the relay holds, not the source's newest: the source may have renewed
    // while the link was being opened (a slow connect), and then the relay's copy ends first.
    const delay = renewalDelay(tokenExpiry(this.current()) ?? this.tokens.expiresAt());
    if (delay === undefined) return;
    this.timer = setTimeout(() => void this.renew(), delay);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async renew(): Promise<void> {
    try {
      const token = await this.tokens.get();
      if (!this.stopped && token !== this.current()) this.deliver(token);
    } catch (error) {
      this.notice(`could not renew the token: ${(error as Error).message}`);
    }
    this.start();
  }
}
