/**
 * A fresh PGlite directory costs an initdb (tens of seconds of WASM on a busy two-core machine),
 * and every relay a test starts without DATABASE_URL opens one in its own DATA_DIR. So the first
 * relay of a run makes one empty, initialised cluster and every relay after it starts from a copy:
 * the same PGlite, the same migrations run by api-backend, without repeating initdb. The template
 * lives in the temp folder per PGlite version, so later runs on the same machine reuse it too.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

let template: Promise<string> | undefined;

/** Puts an initialised, empty PGlite cluster where api-backend will open it (DATA_DIR/pglite). */
export async function seedPglite(dataDir: string): Promise<void> {
  fs.cpSync(await (template ??= makeTemplate()), path.join(dataDir, 'pglite'), { recursive: true });
}

async function makeTemplate(): Promise<string> {
  const dir = path.join(os.tmpdir(), `ctll-pglite-template-${pgliteVersion()}`);
  if (fs.existsSync(path.join(dir, 'PG_VERSION'))) return dir;
  const scratch = fs.mkdtempSync(`${dir}-making-`);
  // In a child process: PGlite's loader needs a plain Node module system, which jest's sandbox is not.
  const script = "require('@electric-sql/pglite').PGlite.create(process.argv[1]).then((db) => db.close())";
  await promisify(execFile)(process.execPath, ['-e', script, scratch], { cwd: path.resolve(__dirname, '../..') });
  try {
    fs.renameSync(scratch, dir);
  } catch {
    // Another test process made it first: use theirs.
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return dir;
}

/** The installed PGlite's version (its package.json is not exported, so found beside its entry point). */
function pgliteVersion(): string {
  let dir = path.dirname(require.resolve('@electric-sql/pglite'));
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}
