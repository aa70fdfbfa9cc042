/**
 * The one seam between the audit and a database. Two drivers sit behind it and run the same SQL
 * and the same migrations: node-postgres (a pool, when DATABASE_URL is set) and PGlite (Postgres
 * compiled to WASM, in DATA_DIR/pglite, the embedded default). Parameters are plain values;
 * timestamps travel as ISO strings and come back as whatever the driver makes of a timestamptz,
 * which callers read with `toDate`.
 */
import path from 'node:path';
import type { Logger } from '../logger';

export type SqlParam = string | number | boolean | null;

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R extends object = Record<string, unknown>>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>>;
}

export interface Transaction extends Queryable {
  /** Runs a script of several statements without parameters (a migration file). */
  exec(script: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Where the data lives, without credentials: for logs, errors and /health. */
  readonly description: string;
  /** Runs `work` in one transaction on one connection: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** DATABASE_URL; unset: PGlite in `<dataDir>/pglite`. */
  url?: string;
  dataDir: string;
  poolSize: number;
  connectTimeoutMs: number;
  logger: Logger;
}

/** Each driver is loaded only when chosen: the other's client library would sit idle in memory. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) {
    const { PgDatabase } = await import('./pg-database');
    return new PgDatabase({ url: options.url, poolSize: options.poolSize, connectTimeoutMs: options.connectTimeoutMs, logger: options.logger });
  }
  const { PgliteDatabase } = await import('./pglite-database');
  return PgliteDatabase.open(path.join(options.dataDir, 'pglite'));
}

/** A timestamptz as read back from either driver (a Date, possibly from another realm, or a string). */
export function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  return new Date(value as string | number | Date);
}
