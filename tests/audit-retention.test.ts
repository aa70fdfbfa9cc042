/**
 * Audit retention as an operator meets it: the daily job removes what ended before
 * AUDIT_RETENTION_DAYS, keeps everything newer, and the database still refuses an ordinary DELETE
 * of a recent row (and any cutoff that reaches into the last day). Runs on the embedded PGlite and
 * on a real PostgreSQL server (required in CI), through a whole relay.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../api-backend/src/config';
import type { Queryable } from '../api-backend/src/audit/database';
import { PgliteDatabase } from '../api-backend/src/audit/pglite-database';
import { loadMigrations, migrate } from '../api-backend/src/audit/migrations';
import { pruneAudit, startRetention } from '../api-backend/src/audit/retention';
import { relayEnv, startLayout, type Layout } from './helpers/layout';
import { AUDIT_TEST_ENV, createTestDatabase, describeWithPostgres, type TestDatabase } from './helpers/postgres';

const OWNER = 'aaaaaaaaaaaaaaaa';
const DAY_MS = 24 * 60 * 60 * 1000;
const ago = (days: number) => new Date(Date.now() - days * DAY_MS).toISOString();

/** Rows as the writer would have left them: some ended long ago, some recently, one still open. */
async function seed(db: Queryable): Promise<void> {
  const proxy = `INSERT INTO proxy_sessions (owner_hash, proxy_id, driver, started_at, stopped_at, stop_reason) VALUES ($1, $2, 'process', $3, $4, $5)`;
  await db.query(proxy, [OWNER, 'old', ago(120), ago(119), 'idle']);
  await db.query(proxy, [OWNER, 'recent', ago(10), ago(9), 'user']);
  // Started before the window, stopped inside it: it ended recently, so it stays.
  await db.query(proxy, [OWNER, 'long', ago(100), ago(5), 'user']);
  await db.query(proxy, [OWNER, 'open', ago(1), null, null]);
  const tunnel = `INSERT INTO tunnel_sessions (owner_hash, proxy_id, proxy_started_at, link_id, transport, connected_at, disconnected_at) VALUES ($1, $2, $3, 't0', 'ws', $4, $5)`;
  await db.query(tunnel, [OWNER, 'old', ago(120), ago(120), ago(119)]);
  await db.query(tunnel, [OWNER, 'recent', ago(10), ago(10), ago(9)]);
  const security = `INSERT INTO security_events (id, at, last_at, count, source, kind, reason) VALUES ($1, $2, $2, 7, '203.0.113.5', 'auth_failure', 'invalid_token')`;
  await db.query(security, ['00000000-0000-4000-8000-00000000c001', ago(200)]);
  await db.query(security, ['00000000-0000-4000-8000-00000000c002', ago(30)]);
  // Written before migration 0003: no last_at, one event.
  await db.query(`INSERT INTO security_events (id, at, kind, reason) VALUES ('00000000-0000-4000-8000-00000000c003', $1, 'cross_user', 'forbidden')`, [ago(95)]);
}

async function remaining(db: Queryable) {
  const proxies = await db.query<{ proxy_id: string }>('SELECT proxy_id FROM proxy_sessions ORDER BY proxy_id');
  const tunnels = await db.query<{ proxy_id: string }>('SELECT proxy_id FROM tunnel_sessions ORDER BY proxy_id');
  const security = await db.query<{ id: string }>('SELECT id::text AS id FROM security_events ORDER BY id');
  return {
    proxies: proxies.rows.map((row) => row.proxy_id),
    tunnels: tunnels.rows.map((row) => row.proxy_id),
    security: security.rows.map((row) => row.id.slice(-4)),
  };
}

function retentionSuite(backend: { env(): Promise<Record<string, string>>; teardown(): Promise<void> }): void {
  let layout: Layout;
  beforeAll(async () => {
    layout = await startLayout({ env: { ...AUDIT_TEST_ENV, AUDIT_RETENTION_DAYS: '90', ...(await backend.env()) } });
  }, 90_000);
  afterAll(async () => {
    await layout?.close();
    await backend.teardown();
  }, 30_000);
  const db = () => layout.relay.audit.database;

  it('the daily job removes rows that ended before the retention window and keeps the rest', async () => {
    await seed(db());
    expect(await layout.relay.audit.prune()).toEqual({ proxies: 1, tunnels: 1, security: 2 });
    expect(await remaining(db())).toEqual({ proxies: ['long', 'open', 'recent'], tunnels: ['recent'], security: ['c002'] });
    // Run again: nothing more is old enough.
    expect(await layout.relay.audit.prune()).toEqual({ proxies: 0, tunnels: 0, security: 0 });
  });

  it('an ordinary DELETE of a recent row is still refused by the database, and so is UPDATE of a security row', async () => {
    await expect(db().query("DELETE FROM security_events WHERE id = '00000000-0000-4000-8000-00000000c002'")).rejects.toThrow(/append-only/);
    await expect(db().query("DELETE FROM proxy_sessions WHERE proxy_id = 'recent'")).rejects.toThrow(/append-only/);
    await expect(db().query('DELETE FROM tunnel_sessions')).rejects.toThrow(/append-only/);
    await expect(db().query('UPDATE security_events SET count = 1')).rejects.toThrow(/append-only/);
    expect(await remaining(db())).toEqual({ proxies: ['long', 'open', 'recent'], tunnels: ['recent'], security: ['c002'] });
  });

  it('refuses a cutoff that reaches into the last day, whether through audit_prune or set by hand', async () => {
    await expect(pruneAudit(db(), 0)).rejects.toThrow(/less than a day ago/);
    // Setting the prune marker by hand to "now" does not open the last day either.
    await expect(
      db().transaction(async (tx) => {
        await tx.query("SELECT set_config('ctll.audit_prune_before', now()::text, true)");
        await tx.query("DELETE FROM proxy_sessions WHERE proxy_id = 'open'");
      }),
    ).rejects.toThrow(/append-only/);
    expect((await remaining(db())).proxies).toContain('open');
  });
}

describe('audit retention (PGlite)', () => {
  retentionSuite({ env: async () => ({}), teardown: async () => undefined });
});

describeWithPostgres('audit retention (PostgreSQL)', () => {
  let testDb: TestDatabase | undefined;
  retentionSuite({
    async env() {
      testDb = await createTestDatabase();
      return { DATABASE_URL: testDb.url };
    },
    teardown: async () => testDb?.drop(),
  });
});

describe('audit retention settings', () => {
  const configOf = (env: Record<string, string>) => loadConfig(relayEnv(env, os.tmpdir()), { proxyScript: 'unused.js' }).audit;

  it('keeps 90 days by default and runs daily at 03:17', () => {
    expect(configOf({})).toMatchObject({ retentionDays: 90, retentionCron: '17 3 * * *' });
  });

  it('takes 0 as "keep forever" and refuses a schedule that is not a cron expression', () => {
    expect(configOf({ AUDIT_RETENTION_DAYS: '0' }).retentionDays).toBe(0);
    expect(() => configOf({ AUDIT_RETENTION_CRON: 'daily' })).toThrow(/AUDIT_RETENTION_CRON/);
  });

  it('with 0 days the job removes nothing, however old', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-retention-'));
    const db = await PgliteDatabase.open(path.join(dir, 'pglite'));
    try {
      await migrate(db, loadMigrations(path.resolve(__dirname, '../postgres/migrations')));
      await seed(db);
      const silent = { info: () => undefined, warn: () => undefined } as never;
      const job = startRetention(db, { days: 0, cron: '17 3 * * *' }, silent);
      expect(await job.run()).toBeUndefined();
      job.stop();
      expect((await remaining(db)).proxies).toHaveLength(4);
    } finally {
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000); // an embedded PGlite takes a while to start on a busy machine
});
