/**
 * Per-stream flow control, the same on both ends and both directions.
 *
 * The sender of a body starts with INITIAL_WINDOW bytes of credit for each stream and spends it
 * as it sends data frames; the receiver gives credit back (a `window` message) only once its
 * consumer has taken the bytes (an HTTP response drained, a local request written). A slow web
 * client therefore slows the desktop's reading of its local server, one stream at a time, and no
 * hop holds more than about one window per stream. Streams never block each other.
 */
export const INITIAL_WINDOW = 1024 * 1024;

/** The sending side's credit for one stream. */
export class SendCredit {
  private available: number;
  private waiters: Array<() => void> = [];

  constructor(initial = INITIAL_WINDOW) {
    this.available = initial;
  }

  get bytes(): number {
    return this.available;
  }

  /** True while the sender may send; a chunk may overshoot the credit by at most one frame. */
  get open(): boolean {
    return this.available > 0;
  }

  spend(bytes: number): void {
    this.available -= bytes;
  }

  grant(bytes: number): void {
    this.available += bytes;
    if (this.available > 0 && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Calls `wake` once credit is available again (immediately if it already is). */
  whenOpen(wake: () => void): void {
    if (this.open) wake();
    else this.waiters.push(wake);
  }

  /** Drops pending waiters, e.g. when the stream is cancelled. */
  clear(): void {
    this.waiters = [];
  }
}

/**
 * The receiving side's count of consumed bytes. Credit goes back in batches (half a window) so a
 * stream of small chunks does not answer each with a message of its own.
 */
export class ReceiveCredit {
  private consumedSinceGrant = 0;

  constructor(
    private readonly grant: (bytes: number) => void,
    private readonly window = INITIAL_WINDOW,
  ) {}

  consumed(bytes: number): void {
    this.consumedSinceGrant += bytes;
    if (this.consumedSinceGrant >= this.window / 2) {
      const bytesToGrant = this.consumedSinceGrant;
      this.consumedSinceGrant = 0;
      this.grant(bytesToGrant);
    }
  }
}
