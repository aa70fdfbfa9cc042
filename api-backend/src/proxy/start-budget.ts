/**
 * How many proxies one user may have started in a minute (PROXY_START_RATE_PER_MINUTE). Only a
 * start that makes a proxy is charged, whichever way it came (POST /api/proxy/start, a tunnel, a
 * bridge registering, a zrok share): an idempotent start of a running proxy costs nothing, and a
 * stop needs no charge of its own, because a stop/start loop is bounded by its starts.
 *
 * Where it is counted: with DATABASE_URL, in PostgreSQL (table proxy_start_budget, migration
 * 0009), so every replica sharing the database spends the same budget; the count is one upsert
 * per charge on a connection borrowed from the audit's pool for that statement, never a
 * connection of its own (a charge waits at most DATABASE_CONNECT_TIMEOUT_MS for one). A window's end
 * is written by the replica that opened it, by its own clock: replicas' clocks must agree (NTP) for
 * Retry-After to be right. With the embedded PGlite there is one api-backend by definition, and the
 * count stays in its memory.
 *
 * When PostgreSQL cannot be reached at charge time (or its answer fails), the start is counted in
 * this replica's memory instead (rate-limiter-flexible's insurance limiter), with a warning in the
 * log: starts go on, each replica still holds its users to the budget for as long as the outage
 * lasts (so N replicas allow up to N times it then), and the shared count takes over again when
 * the database answers. Refusing every start because the budget's store is away would turn a
 * database outage into a relay outage.
 */
import type pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { RateLimitedError } from '@ctll/protocol';
import type { Logger } from '../logger';

export interface StartBudgetOptions {
  /** PROXY_START_RATE_PER_MINUTE. */
  perMinute: number;
  /** The audit's node-postgres pool when DATABASE_URL is set; unset with PGlite: count in memory. */
  pool?: pg.Pool;
  logger: Logger;
}

const WINDOW_S = 60;

/** The count in memory that the library falls back to, calling its consume(), when the store failed. */
class InsuranceBudget extends RateLimiterMemory {
  constructor(
    limits: { points: number; duration: number },
    private readonly logger: Logger,
  ) {
    super(limits);
  }

  override consume(key: string | number, points?: number, options?: Record<string, unknown>): Promise<RateLimiterRes> {
    this.logger.warn('start budget database unavailable; counting this start in this replica only', { owner: String(key) });
    return super.consume(key, points, options);
  }
}

export class StartBudget {
  private readonly limiter: RateLimiterAbstract;
  private readonly perMinute: number;

  constructor({ perMinute, pool, logger }: StartBudgetOptions) {
    this.perMinute = perMinute;
    const limits = { points: perMinute, duration: WINDOW_S };
    if (!pool) {
      this.limiter = new RateLimiterMemory(limits);
      return;
    }
    this.limiter = new RateLimiterPostgres({
      ...limits,
      storeClient: pool,
      storeType: 'pool',
      tableName: 'proxy_start_budget',
      // The migration made the table; the library must not try (and need no DDL rights).
      tableCreated: true,
      keyPrefix: 'proxy-start',
      insuranceLimiter: new InsuranceBudget(limits, logger),
    });
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
