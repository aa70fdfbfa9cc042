/**
 * A database api-backend cannot use stops it at start-up, with a message that names DATABASE_URL
 * and never shows its password: a URL that is not Postgres, a server that does not answer within
 * DATABASE_STARTUP_TIMEOUT_MS, a password the server refuses.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRelay } from '../api-backend/src/app';
import { ConfigError, loadConfig } from '../api-backend/src/config';
import { createLogger } from '../api-backend/src/logger';
import { PROXY_SCRIPT, relayEnv } from './helpers/layout';
import { closedPort, describeWithPostgres, postgres } from './helpers/postgres';

const MAIN = path.resolve(__dirname, '../api-backend/dist/main.js');
const logger = createLogger('error');
const PASSWORD = 'hunter2-secret';

describe('audit start-up with a bad DATABASE_URL', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-audit-start-'));
  });
  afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  const configWith = (env: Record<string, string>) => loadConfig(relayEnv(env, dataDir), { proxyScript: PROXY_SCRIPT });

  it('refuses a URL that is not a postgres URL, naming DATABASE_URL without its password', () => {
    const attempt = () => configWith({ DATABASE_URL: `mysql://ctll:${PASSWORD}@db.example/ctll` });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/DATABASE_URL="mysql:\/\/ctll:\*\*\*@db\.example\/ctll": must be a postgres:\/\/ or postgresql:\/\/ URL/);
    expect(attempt).not.toThrow(new RegExp(PASSWORD));
  });

  it('gives up on a server that does not answer after DATABASE_STARTUP_TIMEOUT_MS, naming DATABASE_URL', async () => {
    const config = configWith({ DATABASE_URL: `postgres://ctll:${PASSWORD}@127.0.0.1:${await closedPort()}/ctll`, DATABASE_STARTUP_TIMEOUT_MS: '1200' });
    const began = Date.now();
    const failure = await startRelay(config, logger).then(
      () => new Error('started'),
      (error: Error) => error,
    );
    expect(failure.message).toMatch(/^audit database \(DATABASE_URL: postgres:\/\/ctll@127\.0\.0\.1:\d+\/ctll\): cannot reach .*ECONNREFUSED/);
    expect(failure.message).not.toContain(PASSWORD);
    // It retried for a while rather than failing on the first refusal.
    expect(Date.now() - began).toBeGreaterThanOrEqual(500);
  });

  it('makes the program exit with that message', async () => {
    const port = await closedPort();
    const child = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH,
        NODE_ENV: 'test',
        HOST: '127.0.0.1',
        PORT: '0',
        DATA_DIR: dataDir,
        DATABASE_URL: `postgres://ctll:${PASSWORD}@127.0.0.1:${port}/ctll`,
        DATABASE_STARTUP_TIMEOUT_MS: '300',
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/api-backend: failed to start: audit database \(DATABASE_URL: /);
    expect(stderr).not.toContain(PASSWORD);
  });

  it('refuses a missing migrations folder, naming it', async () => {
    const config = configWith({ AUDIT_MIGRATIONS_DIR: path.join(dataDir, 'no-such-folder') });
    await expect(startRelay(config, logger)).rejects.toThrow(/audit migrations \(AUDIT_MIGRATIONS_DIR\): cannot read the migrations in .*no-such-folder/);
  });
});

describeWithPostgres('audit start-up against a real server', () => {
  it('gives up at once when the server refuses the password, naming DATABASE_URL', async () => {
    const url = new URL(postgres.url!);
    url.password = PASSWORD;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-audit-start-'));
    try {
      const config = loadConfig(relayEnv({ DATABASE_URL: url.toString(), DATABASE_STARTUP_TIMEOUT_MS: '60000' }, dataDir), { proxyScript: PROXY_SCRIPT });
      const began = Date.now();
      await expect(startRelay(config, logger)).rejects.toThrow(/DATABASE_URL: postgres:\/\/.*refused us: password authentication failed/);
      // Not worth waiting out the start-up timeout: a wrong password does not fix itself.
      expect(Date.now() - began).toBeLessThan(10_000);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
