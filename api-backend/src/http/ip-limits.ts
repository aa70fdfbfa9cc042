/**
 * Per-client-address limits for callers the relay does not know yet, so that one address cannot
 * spend api-backend's work (token checks, proxy starts, /health's probes of Docker and the
 * database) or the audit trail at everyone else's expense:
 *
 * - failed authentications: every 401 an address is answered counts. Past the limit, each /api
 *   request and tunnel upgrade from that address gets 429 before any token is looked at, a valid
 *   one included, until its minute is over. Only 401s count, so a caller with a good token never
 *   comes near the limit however much it sends.
 * - tunnel upgrade attempts and /health requests: each one counts; past the limit, 429.
 *
 * A window is one minute from the first request an address makes in it (rate-limiter-flexible's
 * fixed window); Retry-After says how much of it is left. Counters live in this process's memory
 * and expire with their window. An IPv6 address counts by its /64 (protocol's `clientKey`).
 */
import type { NextFunction, Request, Response } from 'express';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { clientKey, RateLimitedError } from '@ctll/protocol';

export type IpLimit = 'auth_failures' | 'upgrades' | 'health';

/** Requests (or failures) one address may make per minute, for each limit. */
export interface IpLimitSettings {
  enabled: boolean;
  authFailures: number;
  upgrades: number;
  health: number;
}

const WINDOW_SECONDS = 60;

const REFUSALS: Record<IpLimit, string> = {
  auth_failures: 'too many failed authentications from your address',
  upgrades: 'too many tunnel connection attempts from your address',
  health: 'too many health checks from your address',
};

export class IpLimits {
  private readonly limiters?: Record<IpLimit, RateLimiterMemory>;

  /** `onLimited` hears once per address and window that the address went over a limit. */
  constructor(
    settings: IpLimitSettings,
    private readonly onLimited: (limit: IpLimit, key: string) => void = () => {},
  ) {
    if (!settings.enabled) return;
    const perMinute = (points: number) => new RateLimiterMemory({ points, duration: WINDOW_SECONDS });
    this.limiters = {
      auth_failures: perMinute(settings.authFailures),
      upgrades: perMinute(settings.upgrades),
      health: perMinute(settings.health),
    };
  }

  get enabled(): boolean {
    return this.limiters !== undefined;
  }

  /** Rejects with RateLimitedError while `address` is over its failed-authentication limit; counts nothing. */
  async checkAuthFailures(address: string): Promise<void> {
    const limiter = this.limiters?.auth_failures;
    if (!limiter) return;
    const state = await limiter.get(clientKey(address));
    if (state && state.consumedPoints >= limiter.points) throw refusal('auth_failures', state);
  }

  /** Counts one failed authentication (an answer of 401) against `address`. */
  async recordAuthFailure(address: string): Promise<void> {
    const limiter = this.limiters?.auth_failures;
    if (!limiter) return;
    const key = clientKey(address);
    const state = await limiter.penalty(key);
    if (state.consumedPoints === limiter.points) this.onLimited('auth_failures', key);
  }

  /** Counts one tunnel upgrade attempt or /health request; rejects with RateLimitedError past the limit. */
  async take(limit: 'upgrades' | 'health', address: string): Promise<void> {
    const limiter = this.limiters?.[limit];
    if (!limiter) return;
    const key = clientKey(address);
    try {
      await limiter.consume(key);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      if (error.consumedPoints === limiter.points + 1) this.onLimited(limit, key);
      throw refusal(limit, error);
    }
  }
}

function refusal(limit: IpLimit, state: RateLimiterRes): RateLimitedError {
  const seconds = Math.max(1, Math.ceil(state.msBeforeNext / 1000));
  return new RateLimitedError(`${REFUSALS[limit]}: try again in ${seconds} s`, { retryAfterSeconds: seconds });
}

function addressOf(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? '';
}

/**
 * Express middleware for the authenticated routes, mounted before the authenticator: refuses an
 * address that is over its failed-authentication limit, and counts this request if its answer is
 * a 401 (from the authenticator or any route after it).
 */
export function authFailureLimit(limits: IpLimits) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (!limits.enabled) return next();
    const address = addressOf(req);
    limits.checkAuthFailures(address).then(() => {
      res.on('finish', () => {
        if (res.statusCode === 401) void limits.recordAuthFailure(address);
      });
      next();
    }, next);
  };
}

/** Express middleware for GET /health. */
export function healthLimit(limits: IpLimits) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (!limits.enabled) return next();
    limits.take('health', addressOf(req)).then(() => next(), next);
  };
}
