/**
 * When a desktop link's credential runs out. api-backend tells the proxy when the credential that
 * opened a link expires, and again whenever a renewal is accepted; once that time plus the grace
 * has passed with no renewal, `onExpired` runs (the link closes with TOKEN_EXPIRED_CLOSE). The
 * grace covers clock skew and a renewal still in flight. No expiry (undefined) means never: a
 * relay key without an expiry date.
 */

/** setTimeout's longest delay; a later deadline is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class CredentialDeadline {
  private expiry: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    expiresAt: number | undefined,
    private readonly graceMs: number,
    private readonly onExpired: () => void,
  ) {
    this.set(expiresAt);
  }

  /** When the current credential expires (ms since the epoch), or undefined for never. */
  get expiresAt(): number | undefined {
    return this.expiry;
  }

  /** The link now holds a credential expiring at `expiresAt` (undefined: never). */
  set(expiresAt: number | undefined): void {
    if (this.stopped) return;
    this.expiry = expiresAt;
    this.arm();
  }

  /**
   * A request of the link carried a credential expiring at `expiresAt`: keeps the later of the
   * two. Long-poll requests travel in parallel, and one begun with the older token must not
   * shorten what a newer one already extended.
   */
  extend(expiresAt: number | undefined): void {
    if (this.expiry === undefined) return;
    if (expiresAt === undefined || expiresAt > this.expiry) this.set(expiresAt);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.expiry === undefined || this.stopped) return;
    // Always through a timer, even when already past: the owner is never called back from set().
    const wait = Math.max(0, this.expiry + this.graceMs - Date.now());
    this.timer = setTimeout(() => {
      if (this.expiry !== undefined && this.expiry + this.graceMs > Date.now()) return this.arm();
      this.stopped = true;
      this.onExpired();
    }, Math.min(wait, MAX_TIMER_MS));
    this.timer.unref();
  }
}
