/**
 * The writer's retry schedule while the database is away: doubling from `initialMs` up to `maxMs`,
 * each delay spread by ±`jitter` so replicas that lost the same server do not return in step.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Fraction of the delay added or taken at random. */
  jitter: number;
}

export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(options.maxMs, options.initialMs * 2 ** Math.max(0, attempt - 1));
  const spread = base * options.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base + spread));
}
