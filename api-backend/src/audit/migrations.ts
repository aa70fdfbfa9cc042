/**
 * Schema migrations: the ordered files `NNNN_name.sql` in postgres/migrations, applied at start-up
 * by whichever driver is in use, and recorded in `schema_migrations` (version, checksum, when).
 *
 * One run is one transaction that first takes a transaction-scoped advisory lock, so api-backends
 * starting together queue on it: the first applies what is pending, the others then find it
 * recorded and apply nothing. Postgres DDL is transactional, so a failing file leaves the schema as
 * it was and start-up stops. A file whose text changed after it was applied stops start-up too:
 * replicas would otherwise disagree about the schema without anyone noticing. Files hold plain
 * statements, no BEGIN/COMMIT, nothing that refuses to run in a transaction.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from './database';
import { DatabaseUnavailableError, MigrationError } from './errors';

export interface Migration {
  version: string;
  sql: string;
  checksum: string;
}

/** Any fixed 64-bit number; every replica must use the same one ("ctll-mig" in ASCII). */
const LOCK_KEY = '7166472118927714663';
const FILE_NAME = /^(\d{4}_[a-z0-9_]+)\.sql$/;

export function loadMigrations(dir: string): Migration[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((name) => name.endsWith('.sql'));
  } catch (error) {
    throw new MigrationError(`cannot read the migrations in ${dir}: ${(error as Error).message}`, { cause: error });
  }
  const bad = names.filter((name) => !FILE_NAME.test(name));
  if (bad.length > 0) throw new MigrationError(`migration file names must look like 0001_name.sql: ${bad.join(', ')} in ${dir}`);
  if (names.length === 0) throw new MigrationError(`no migrations found in ${dir}`);
  return names.sort().map((name) => {
    const sql = fs.readFileSync(path.join(dir, name), 'utf8');
    return { version: FILE_NAME.exec(name)![1], sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

export interface MigrationResult {
  /** Versions this call applied (empty when the schema was up to date). */
  applied: string[];
  /**
   * Versions recorded in the database that this build does not have: a newer replica migrated
   * first (a rolling deploy). Migrations only add, so an older build keeps working; we say so.
   */
  newer: string[];
}

/** Applies what is pending, under the lock. */
export async function migrate(db: Database, migrations: readonly Migration[]): Promise<MigrationResult> {
  return db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version    text        PRIMARY KEY,
         checksum   text        NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await tx.query<{ version: string; checksum: string }>('SELECT version, checksum FROM schema_migrations');
    const applied = new Map(rows.map((row) => [row.version, row.checksum]));
    const known = new Set(migrations.map((m) => m.version));
    const newer = [...applied.keys()].filter((version) => !known.has(version)).sort();
    const done: string[] = [];
    for (const migration of migrations) {
      const checksum = applied.get(migration.version);
      if (checksum === migration.checksum) continue;
      if (checksum !== undefined) {
        throw new MigrationError(`migration ${migration.version} changed after it was applied; add a new migration instead of editing an applied one`);
      }
      try {
        await tx.exec(migration.sql);
      } catch (error) {
        if (error instanceof DatabaseUnavailableError) throw error; // the connection failed, not the file
        throw new MigrationError(`migration ${migration.version} failed: ${(error as Error).message}`, { cause: error });
      }
      await tx.query('INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)', [migration.version, migration.checksum]);
      done.push(migration.version);
    }
    return { applied: done, newer };
  });
}
