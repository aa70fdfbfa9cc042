/**
 * A per-user budget for calls that cost the relay more than they cost the caller (a proxy start
 * or stop makes or removes a process or a container). Every route given the same handler draws
 * on one budget of `perMinute` calls per user; past it the answer is 429 with Retry-After.
 * Counted in this api-backend's memory: with several replicas each keeps its own count.
 */
import type { RequestHandler } from 'express';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { RateLimitedError } from '@ctll/protocol';
import type { Caller } from '../auth/authenticator';
import { userHash } from '../proxy/naming';

export function perUserRate(options: { perMinute: number; what: string }): RequestHandler {
  const limiter = new RateLimiterMemory({ points: options.perMinute, duration: 60 });
  return (_req, res, next) => {
    const { userId } = res.locals.caller as Caller;
    limiter.consume(userHash(userId)).then(
      () => next(),
      (rejection: unknown) => {
        if (!(rejection instanceof RateLimiterRes)) return next(rejection);
        const retryAfterSeconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
        next(
          new RateLimitedError(`at most ${options.perMinute} ${options.what} a minute; try again in ${retryAfterSeconds} s`, {
            retryAfterSeconds,
          }),
        );
      },
    );
  };
}
