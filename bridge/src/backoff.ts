/**
 * The reconnect schedule: 1, 2, 4, 8, 16, then 30 s for every further attempt, each delay spread
 * by a random ±20 % so that many bridges cut off by the same relay restart do not all knock again
 * in the same second. A connection that stayed up resets the schedule to its first step.
 */

export interface BackoffOptions {
  /** The delays before each attempt; the last one repeats for as long as attempts fail. */
  stepsMs?: readonly number[];
  /** Spread of each delay as a fraction of it: 0.2 means anywhere from 80 % to 120 %. */
  jitter?: number;
  /** Source of randomness in [0, 1); injected by tests so their delays are known. */
  random?: () => number;
}

export const DEFAULT_BACKOFF = Object.freeze({
  stepsMs: Object.freeze([1_000, 2_000, 4_000, 8_000, 16_000, 30_000]) as readonly number[],
  jitter: 0.2,
  random: Math.random,
});

export class Backoff {
  private readonly stepsMs: readonly number[];
  private readonly jitter: number;
  private readonly random: () => number;
  private failures = 0;

  constructor(options: BackoffOptions = {}) {
    const settings = { ...DEFAULT_BACKOFF, ...options };
    if (settings.stepsMs.length === 0) throw new RangeError('backoff needs at least one step');
    if (settings.jitter < 0 || settings.jitter >= 1) throw new RangeError(`backoff jitter ${settings.jitter} must be in [0, 1)`);
    this.stepsMs = settings.stepsMs;
    this.jitter = settings.jitter;
    this.random = settings.random;
  }

  /** Attempts that failed since the last reset. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next attempt, in whole milliseconds; each call moves one step on. */
  next(): number {
    const step = this.stepsMs[Math.min(this.failures, this.stepsMs.length - 1)];
    this.failures += 1;
    const spread = (this.random() * 2 - 1) * this.jitter;
    return Math.round(step * (1 + spread));
  }

  reset(): void {
    this.failures = 0;
  }
}
