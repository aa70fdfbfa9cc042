/**
 * How many proxies one user may have started in a minute (PROXY_START_RATE_PER_MINUTE). Only a
 * start that makes a proxy is charged, whichever way it came (POST /api/proxy/start, a tunnel, a
 * bridge registering, a zrok share): an idempotent start of a running proxy costs nothing, and a
 * stop needs no charge of its own, because a stop/start loop is bounded by its starts.
 * Counted in this api-backend's memory: with several replicas each keeps its own count.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { RateLimitedError } from '@ctll/protocol';

export class StartBudget {
  private readonly limiter: RateLimiterMemory;

  constructor(private readonly perMinute: number) {
    this.limiter = new RateLimiterMemory({ points: perMinute, duration: 60 });
  }

  /** Takes one start from the owner's budget, or throws 429 with when the next one is due. */
  async charge(ownerHash: string): Promise<void> {
    try {
      await this.limiter.consume(ownerHash);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      const retryAfterSeconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      throw new RateLimitedError(`your proxy was started ${this.perMinute} times in the last minute; try again in ${retryAfterSeconds} s`, {
        retryAfterSeconds,
      });
    }
  }
}
