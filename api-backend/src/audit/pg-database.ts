/**
 * The node-postgres driver: one pool per api-backend, used when DATABASE_URL is set. Pool
 * connections are made on demand, so the database may be down when this object is made (start-up
 * retries the first migration instead) and may go away and come back at any time after: a broken
 * connection is thrown away, never returned to the pool. This file is the one place where
 * node-postgres errors become our two kinds (errors.ts).
 */
import pg from 'pg';
import type { Logger } from '../logger';
import type { Database, QueryResult, SqlParam, Transaction } from './database';
import { DatabaseQueryError, DatabaseUnavailableError } from './errors';

export interface PgDatabaseOptions {
  url: string;
  poolSize: number;
  connectTimeoutMs: number;
  logger: Logger;
}

/** Longest wait for one statement's answer; a server that went silent becomes a retryable error. */
const QUERY_TIMEOUT_MS = 30_000;
/** Idle pooled connections are closed after this long. */
const IDLE_TIMEOUT_MS = 30_000;

export class PgDatabase implements Database {
  readonly kind = 'postgres' as const;
  readonly description: string;
  /** Also the start budget's store (proxy/start-budget.ts): one statement per charge, no connection of its own. */
  readonly pool: pg.Pool;

  constructor(options: PgDatabaseOptions) {
    this.description = describeUrl(options.url);
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs,
      idleTimeoutMillis: IDLE_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'ctll-api-backend',
    });
    // A pooled connection that breaks while idle (server restart) is dropped by the pool; without
    // a listener the 'error' event would end the process.
    this.pool.on('error', (error) => options.logger.warn('idle database connection lost', { db: this.description, error: error.message }));
  }

  async query<R extends object>(sql: string, params: readonly SqlParam[] = []): Promise<QueryResult<R>> {
    try {
      const result = await this.pool.query<R>(sql, params as SqlParam[]);
      return { rows: result.rows, rowCount: result.rowCount ?? 0 };
    } catch (error) {
      throw this.mapError(error);
    }
  }

  async transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.mapError(error);
    }
    // A connection that failed mid-transaction is destroyed on release, not reused. A checked-out
    // client also reports its socket dying as an 'error' event, which must have a listener.
    let broken: Error | undefined;
    const onError = (error: Error) => (broken ??= error);
    client.on('error', onError);
    const run = async <R>(sql: string, params?: readonly SqlParam[]): Promise<pg.QueryResult<R & pg.QueryResultRow>> => {
      try {
        return await client.query<R & pg.QueryResultRow>(sql, params as SqlParam[] | undefined);
      } catch (error) {
        const mapped = this.mapError(error);
        if (mapped instanceof DatabaseUnavailableError) broken = mapped;
        throw mapped;
      }
    };
    const tx: Transaction = {
      query: async <R extends object>(sql: string, params: readonly SqlParam[] = []) => {
        const result = await run<R>(sql, params);
        return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
      },
      exec: async (script: string) => {
        // Without parameters node-postgres uses the simple protocol, which runs several statements.
        await run(script);
      },
    };
    try {
      await run('BEGIN');
      const result = await work(tx);
      await run('COMMIT');
      return result;
    } catch (error) {
      if (!broken) await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken ?? false);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private mapError(error: unknown): Error {
    return mapPgError(error, this.description);
  }
}

/** Socket-level failures: the server is away, not our statement wrong. */
const NETWORK_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATE classes and codes that mean "the database is unavailable now":
 * 08 connection exception, 53 insufficient resources (too many connections, disk full),
 * 57P01-57P03 shutting down or starting up, 40001/40P01 serialization failure or deadlock
 * (the transaction may simply be retried).
 */
const UNAVAILABLE_CLASSES = ['08', '53'];
const UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '40001', '40P01']);
/** 28 invalid authorization, 3D000 no such database: retrying alone will not fix these. */
const REFUSED_CLASSES = ['28'];
const REFUSED_CODES = new Set(['3D000']);

export function mapPgError(error: unknown, where: string): Error {
  if (error instanceof DatabaseUnavailableError || error instanceof DatabaseQueryError) return error;
  const e = error as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : String(error);
  if (error instanceof pg.DatabaseError && code) {
    const cls = code.slice(0, 2);
    if (UNAVAILABLE_CLASSES.includes(cls) || UNAVAILABLE_CODES.has(code)) {
      return new DatabaseUnavailableError(`audit database ${where} is unavailable: ${message}`, true, { cause: error });
    }
    if (REFUSED_CLASSES.includes(cls) || REFUSED_CODES.has(code)) {
      return new DatabaseUnavailableError(`audit database ${where} refused us: ${message}`, false, { cause: error });
    }
    return new DatabaseQueryError(`audit database ${where} refused a statement: ${message} (SQLSTATE ${code})`, code, { cause: error });
  }
  if (code && NETWORK_ERRNOS.has(code)) {
    return new DatabaseUnavailableError(`cannot reach the audit database ${where}: ${message}`, true, { cause: error });
  }
  // Anything else node-postgres throws without a SQLSTATE is about the connection ("Connection
  // terminated unexpectedly", "timeout exceeded when trying to connect", "Query read timeout").
  // Counting it as unavailable keeps the records queued: a wrong guess costs a retry, not data.
  return new DatabaseUnavailableError(`audit database ${where} is unavailable: ${message}`, true, { cause: error });
}

/** The URL without its password, for logs, errors and /health. */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : '';
    return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`;
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}
