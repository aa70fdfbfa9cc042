/**
 * Retry schedules: a list of delays, the last one repeated for as long as attempts fail, each
 * spread by a random ±jitter so that many clients cut off by the same failure do not all come back
 * in the same second. The bridge reconnects on the default (1, 2, 4, 8, 16, then 30 s; a
 * connection that stayed up resets it); api-backend's audit retries its database on a schedule
 * that doubles from a first delay up to a cap (`doublingSteps`).
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

/** Delays doubling from `initialMs` up to `maxMs`: (250, 5000) gives 250, 500, 1000, 2000, 4000, 5000. */
export function doublingSteps(initialMs: number, maxMs: number): number[] {
  if (!(initialMs > 0)) throw new RangeError(`backoff's first delay ${initialMs} must be above 0`);
  const steps: number[] = [];
  for (let step = initialMs; step < maxMs; step *= 2) steps.push(step);
  steps.push(maxMs);
  return steps;
}

/** The delay before attempt number `attempt` (1: the first retry), in whole milliseconds. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { stepsMs, jitter, random } = settings(options);
  const step = stepsMs[Math.min(Math.max(1, attempt), stepsMs.length) - 1];
  return Math.round(step * (1 + (random() * 2 - 1) * jitter));
}

/** A schedule that remembers how many attempts failed since it was last reset. */
export class Backoff {
  private readonly options: Required<BackoffOptions>;
  private failures = 0;

  constructor(options: BackoffOptions = {}) {
    this.options = settings(options);
  }

  /** Attempts that failed since the last reset. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next attempt; each call moves one step on. */
  next(): number {
    this.failures += 1;
    return backoffDelay(this.failures, this.options);
  }

  reset(): void {
    this.failures = 0;
  }
}

function settings(options: BackoffOptions): Required<BackoffOptions> {
  const merged = { ...DEFAULT_BACKOFF, ...options };
  if (merged.stepsMs.length === 0) throw new RangeError('backoff needs at least one step');
  if (merged.jitter < 0 || merged.jitter >= 1) throw new RangeError(`backoff jitter ${merged.jitter} must be in [0, 1)`);
  return merged;
}
