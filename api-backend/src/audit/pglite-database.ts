/**
 * The embedded driver: PGlite, real Postgres compiled to WASM, running inside this process with its
 * files in DATA_DIR/pglite, so `npm start` keeps an audit trail with no database server. One
 * process owns the directory (PGlite is single-user): two api-backends must not share a DATA_DIR.
 * PGlite serialises its queries itself, and a transaction holds that queue, so nothing interleaves
 * with a batch. This file is the one place where PGlite's errors become our two kinds (errors.ts).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import nodeModule from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import v8 from 'node:v8';
import type * as PgliteModule from '@electric-sql/pglite';
import type { Database, QueryResult, SqlParam, Transaction } from './database';
import { DatabaseQueryError, DatabaseUnavailableError } from './errors';

type PGlite = PgliteModule.PGlite;

export class PgliteDatabase implements Database {
  readonly kind = 'pglite' as const;

  private constructor(
    private readonly db: PGlite,
    readonly description: string,
  ) {}

  static async open(dir: string): Promise<PgliteDatabase> {
    fs.mkdirSync(dir, { recursive: true });
    const description = `pglite ${dir}`;
    try {
      // Before PGlite compiles its module: the flag is read at compile time and touches only WASM.
      v8.setFlagsFromString(WASM_FLAG);
      const { PGlite } = loadPglite();
      const startParams = [...PGlite.defaultStartParams, ...MEMORY_SETTINGS];
      if (!fs.existsSync(path.join(dir, 'PG_VERSION'))) await initialise(dir, startParams);
      return new PgliteDatabase(await PGlite.create(dir, { startParams }), description);
    } catch (error) {
      throw new DatabaseUnavailableError(`cannot open the embedded audit database ${description}: ${(error as Error).message}`, false, { cause: error });
    }
  }

  async query<R extends object>(sql: string, params: readonly SqlParam[] = []): Promise<QueryResult<R>> {
    return run(this.description, () => this.db.query<R>(sql, params as SqlParam[]));
  }

  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.db.transaction((inner) =>
      work({
        query: <R extends object>(sql: string, params: readonly SqlParam[] = []) =>
          run(this.description, () => inner.query<R>(sql, params as SqlParam[])),
        exec: async (script: string) => {
          await run(this.description, () => inner.exec(script));
        },
      }),
    );
  }

  async close(): Promise<void> {
    if (!this.db.closed) await this.db.close();
  }
}

/**
 * What keeps the embedded database at tens of MB instead of hundreds. Postgres's defaults size its
 * shared memory for a server (128 MB of shared_buffers, 100 connections); here one process writes a
 * few audit rows at a time and the OS page cache holds the files anyway. PGlite is single-user, so
 * a handful of connection slots is plenty (more than superuser_reserved_connections, which Postgres
 * requires).
 */
const MEMORY_SETTINGS = ['-c', 'shared_buffers=4MB', '-c', 'max_connections=5', '-c', 'temp_buffers=1MB'];

/**
 * V8 tiers hot WASM functions up to TurboFan; for PGlite's startup that is about 45 MB of compiler
 * memory the process keeps. Baseline (Liftoff) code is fast enough for batched audit writes.
 */
const WASM_FLAG = '--liftoff-only';

/**
 * A fresh directory needs initdb, which runs two more PGlite instances and peaks near 600 MB. Run
 * in a child process that exits, that memory goes back to the OS; in this process much of it would
 * stay (V8 and the allocator keep what a burst took), so api-backend would idle several times larger.
 * The child keeps V8's optimising WASM tier: its memory ends with it, and initdb runs faster.
 */
async function initialise(dir: string, startParams: string[]): Promise<void> {
  const entry = pgliteLoader().resolve('@electric-sql/pglite');
  const script = "require(process.argv[1]).PGlite.create(process.argv[2], { startParams: JSON.parse(process.argv[3]) }).then((db) => db.close())";
  await promisify(execFile)(process.execPath, ['-e', script, entry, dir, JSON.stringify(startParams)]);
}

async function run<R>(where: string, call: () => Promise<{ rows?: R[]; affectedRows?: number } | unknown[]>): Promise<QueryResult<R>> {
  try {
    const result = await call();
    if (Array.isArray(result)) return { rows: [], rowCount: 0 };
    return { rows: result.rows ?? [], rowCount: result.affectedRows ?? 0 };
  } catch (error) {
    const e = error as { code?: unknown; severity?: unknown; message?: unknown };
    // PGlite reports a refused statement the way a server does: with a SQLSTATE and a severity.
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && e.severity !== undefined) {
      throw new DatabaseQueryError(`audit database ${where} refused a statement: ${String(e.message)} (SQLSTATE ${e.code})`, e.code, { cause: error });
    }
    // Anything else means the instance itself failed (closed, out of memory).
    throw new DatabaseUnavailableError(`audit database ${where} failed: ${String(e.message ?? error)}`, true, { cause: error });
  }
}

/**
 * PGlite loads Node built-ins with import(). Inside a VM sandbox (jest runs each test file in one)
 * that needs --experimental-vm-modules, so PGlite is loaded through Node's own module loader, which
 * process.getBuiltinModule reaches even from a sandbox (Node >= 20.16). Everywhere else this is an
 * ordinary require.
 */
function loadPglite(): typeof PgliteModule {
  return pgliteLoader()('@electric-sql/pglite') as typeof PgliteModule;
}

function pgliteLoader(): NodeJS.Require {
  const loader = typeof process.getBuiltinModule === 'function' ? process.getBuiltinModule('node:module') : nodeModule;
  return loader.createRequire(__filename);
}
