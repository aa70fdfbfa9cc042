/**
 * The audit's storage, against both drivers: the schema built from empty by the migrations and
 * left alone on a re-run, replicas migrating at once, and the writer's promises (a lost commit
 * reply writes nothing twice, a refused record does not block the others, the queue is bounded
 * and counts what it drops). PGlite always runs; PostgreSQL when a server answers (required in CI).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import winston from 'winston';
import type { Database } from '../api-backend/src/audit/database';
import { MigrationError } from '../api-backend/src/audit/errors';
import { loadMigrations, migrate } from '../api-backend/src/audit/migrations';
import { PgDatabase } from '../api-backend/src/audit/pg-database';
import { PgliteDatabase } from '../api-backend/src/audit/pglite-database';
import { ExitClaims } from '../api-backend/src/proxy/exit-claims';
import { applyRecord } from '../api-backend/src/audit/record-sql';
import type { AuditRecord } from '../api-backend/src/audit/records';
import { AuditWriter } from '../api-backend/src/audit/writer';
import { createLogger } from '../api-backend/src/logger';
import { closedPort, createTestDatabase, describeWithPostgres, TcpForwarder, viaPort, type TestDatabase } from './helpers/postgres';

const MIGRATIONS_DIR = path.resolve(__dirname, '../postgres/migrations');
const migrations = loadMigrations(MIGRATIONS_DIR);
// Several tests fail writes on purpose; their error lines would only be noise unless asked for.
const logger = process.env.CTLL_TEST_LOG_LEVEL ? createLogger(process.env.CTLL_TEST_LOG_LEVEL) : winston.createLogger({ silent: true });
const OWNER = '0123456789abcdef';

interface Opened {
  db: Database;
  close(): Promise<void>;
}

function pgOpen(url: string): Database {
  return new PgDatabase({ url, poolSize: 4, connectTimeoutMs: 3000, logger });
}

async function tables(db: Database): Promise<string[]> {
  const { rows } = await db.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
  );
  return rows.map((row) => row.table_name);
}

function records(): AuditRecord[] {
  const at = (s: number) => new Date(Date.UTC(2030, 0, 1, 12, 0, s)).toISOString();
  const instance = { ownerHash: OWNER, proxyId: '4242', proxyStartedAt: at(0) };
  return [
    { type: 'proxy_started', ownerHash: OWNER, proxyId: '4242', driver: 'process', startedAt: at(0) },
    { type: 'tunnel_opened', ...instance, link: 't0', transport: 'ws', client: 'ctll-bridge/0.1.0 (linux; node 20)', at: at(1) },
    { type: 'tunnel_closed', ...instance, link: 't0', transport: 'ws', at: at(5), requests: 3, bytesToDesktop: 300, bytesFromDesktop: 9000, reason: '1000 bye' },
    // A close whose opening was never seen (it fell out of the proxy's journal).
    { type: 'tunnel_closed', ...instance, link: 't1', transport: 'poll', at: at(6), requests: 1, bytesToDesktop: 10, bytesFromDesktop: 20, reason: 'gone' },
    { type: 'security', id: '6f1c1f44-8d3e-4d4b-9a59-0b1a9d3e2c11', at: at(7), lastAt: at(7), count: 4, source: '203.0.113.9', kind: 'auth_failure', reason: 'invalid_token' },
    { type: 'proxy_stopped', ownerHash: OWNER, proxyId: '4242', driver: 'process', startedAt: at(0), stoppedAt: at(8), reason: 'user' },
  ];
}

async function snapshot(db: Database) {
  const proxies = await db.query('SELECT owner_hash, proxy_id, driver, started_at, stopped_at, stop_reason FROM proxy_sessions ORDER BY id');
  const tunnels = await db.query(
    `SELECT link_id, transport, client, connected_at, disconnected_at, requests::float8 AS requests,
            bytes_to_desktop::float8 AS bytes_to_desktop, bytes_from_desktop::float8 AS bytes_from_desktop, close_reason
     FROM tunnel_sessions ORDER BY link_id`,
  );
  const security = await db.query("SELECT id::text AS id, kind, reason, count, source FROM security_events WHERE kind = 'auth_failure'");
  // Plain copies: PGlite's rows come from another realm.
  return JSON.parse(JSON.stringify({ proxies: proxies.rows, tunnels: tunnels.rows, security: security.rows }));
}

function storageSuite(open: () => Promise<Opened>): void {
  let opened: Opened;
  beforeAll(async () => {
    opened = await open();
  }, 60_000);
  afterAll(() => opened?.close());

  it('builds the schema from an empty database and records each migration', async () => {
    const result = await migrate(opened.db, migrations);
    expect(result).toEqual({
      applied: ['0001_proxy_and_tunnel_sessions', '0002_security_events', '0003_security_counts_and_retention', '0004_relay_keys', '0005_tunnel_session_keys', '0006_operator_stop', '0007_zrok_shares', '0008_proxy_exit_reports', '0009_proxy_start_budget'],
      newer: [],
    });
    expect(await tables(opened.db)).toEqual(['proxy_exit_reports', 'proxy_sessions', 'proxy_start_budget', 'relay_keys', 'schema_migrations', 'security_events', 'tunnel_sessions', 'zrok_shares']);
    const { rows } = await opened.db.query<{ version: string; checksum: string }>('SELECT version, checksum FROM schema_migrations ORDER BY version');
    expect(rows.map((row) => [row.version, row.checksum])).toEqual(migrations.map((m) => [m.version, m.checksum]));
  });

  it('applies nothing when run again', async () => {
    expect(await migrate(opened.db, migrations)).toEqual({ applied: [], newer: [] });
    const { rows } = await opened.db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
    expect(rows[0].n).toBe(migrations.length);
  });

  it('refuses to start on a migration edited after it was applied', async () => {
    const edited = migrations.map((m, i) => (i === 0 ? { ...m, checksum: 'changed' } : m));
    await expect(migrate(opened.db, edited)).rejects.toThrow(MigrationError);
    await expect(migrate(opened.db, edited)).rejects.toThrow(/0001_proxy_and_tunnel_sessions changed after it was applied/);
  });

  it('keeps security events append-only', async () => {
    await opened.db.query("INSERT INTO security_events (id, at, kind, reason) VALUES ('00000000-0000-4000-8000-000000000001', now(), 'rate_limited', 'status 429')");
    await expect(opened.db.query("UPDATE security_events SET reason = 'x'")).rejects.toThrow(/append-only/);
    await expect(opened.db.query('DELETE FROM security_events')).rejects.toThrow(/append-only/);
  });

  it('writes every kind of record into full rows, and the same records again change nothing', async () => {
    const writer = new AuditWriter(opened.db, applyRecord, { flushIntervalMs: 20 }, logger).start();
    for (const record of records()) writer.push(record);
    expect(await writer.flush(10_000)).toBe(true);
    const first = await snapshot(opened.db);
    for (const record of records()) writer.push(record);
    expect(await writer.flush(10_000)).toBe(true);
    await writer.close(1000);
    expect(await snapshot(opened.db)).toEqual(first);
    expect(first.proxies).toEqual([
      expect.objectContaining({ owner_hash: OWNER, proxy_id: '4242', driver: 'process', stop_reason: 'user', stopped_at: '2030-01-01T12:00:08.000Z' }),
    ]);
    expect(first.tunnels).toEqual([
      expect.objectContaining({ link_id: 't0', transport: 'ws', client: 'ctll-bridge/0.1.0', connected_at: '2030-01-01T12:00:01.000Z', requests: 3, bytes_to_desktop: 300, bytes_from_desktop: 9000, close_reason: '1000 bye' }),
      expect.objectContaining({ link_id: 't1', transport: 'poll', connected_at: null, disconnected_at: '2030-01-01T12:00:06.000Z', requests: 1 }),
    ]);
    expect(first.security).toEqual([expect.objectContaining({ kind: 'auth_failure', reason: 'invalid_token', count: 4, source: '203.0.113.9' })]);
    expect(writer.status()).toMatchObject({ ok: true, queued: 0, dropped: 0 });
  });

  it('closes a session and its desktop whose death another replica wrote before their rows landed, and only those', async () => {
    // Two replicas, two queues: B claims the crash and writes it while A's start is still queued.
    const owner = 'fedcba9876543210';
    const replicaA = new AuditWriter(opened.db, applyRecord, { flushIntervalMs: 20 }, logger).start();
    const replicaB = new AuditWriter(opened.db, applyRecord, { flushIntervalMs: 20 }, logger).start();
    const startedAt = new Date(Date.now() - 2000).toISOString();
    expect(await new ExitClaims(opened.db, logger).claim(owner, 'container-1')).toBe(true);
    replicaB.push({ type: 'proxy_stopped', ownerHash: owner, proxyId: 'container-1', driver: 'docker', stoppedAt: new Date().toISOString(), reason: 'error' });
    expect(await replicaB.flush(10_000)).toBe(true);
    replicaA.push({ type: 'proxy_started', ownerHash: owner, proxyId: 'container-1', driver: 'docker', startedAt });
    const tunnel = (proxyId: string, proxyStartedAt: string, at: string) =>
      ({ type: 'tunnel_opened', ownerHash: owner, proxyId, proxyStartedAt, link: 't0', transport: 'ws', client: 'ctll-bridge/0.1.0', at }) as const;
    replicaA.push(tunnel('container-1', startedAt, new Date(Date.now() - 1000).toISOString()));
    // The owner's next proxy, started after the death, is not closed by it, nor is its desktop.
    const restartedAt = new Date(Date.now() + 2000).toISOString();
    replicaA.push({ type: 'proxy_started', ownerHash: owner, proxyId: 'container-2', driver: 'docker', startedAt: restartedAt });
    replicaA.push(tunnel('container-2', restartedAt, new Date(Date.now() + 3000).toISOString()));
    expect(await replicaA.flush(10_000)).toBe(true);
    // Applied twice (a lost commit reply), nothing changes.
    replicaA.push({ type: 'proxy_started', ownerHash: owner, proxyId: 'container-1', driver: 'docker', startedAt });
    expect(await replicaA.flush(10_000)).toBe(true);
    await Promise.all([replicaA.close(1000), replicaB.close(1000)]);
    const { rows } = await opened.db.query<{ proxy_id: string; stop_reason: string | null; closed: boolean }>(
      'SELECT proxy_id, stop_reason, stopped_at IS NOT NULL AS closed FROM proxy_sessions WHERE owner_hash = $1 ORDER BY started_at',
      [owner],
    );
    expect(rows.map((row) => ({ ...row }))).toEqual([
      { proxy_id: 'container-1', stop_reason: 'error', closed: true },
      { proxy_id: 'container-2', stop_reason: null, closed: false },
    ]);
    const tunnels = await opened.db.query<{ proxy_id: string; close_reason: string | null; closed: boolean }>(
      'SELECT proxy_id, close_reason, disconnected_at IS NOT NULL AS closed FROM tunnel_sessions WHERE owner_hash = $1 ORDER BY proxy_started_at',
      [owner],
    );
    expect(tunnels.rows.map((row) => ({ ...row }))).toEqual([
      { proxy_id: 'container-1', close_reason: 'proxy exited', closed: true },
      { proxy_id: 'container-2', close_reason: null, closed: false },
    ]);
  });

  it('sets aside a record the database refuses, counts it, and writes the rest of its batch', async () => {
    const dropped: string[] = [];
    const writer = new AuditWriter(opened.db, applyRecord, { flushIntervalMs: 20 }, logger, { onDropped: (n, why) => dropped.push(`${n} ${why}`) }).start();
    const at = new Date().toISOString();
    const group = { at, lastAt: at, count: 1, source: '127.0.0.1' };
    writer.push({ type: 'security', id: '00000000-0000-4000-8000-0000000000a1', ...group, kind: 'cross_user', reason: 'forbidden' });
    // Not a hash: the table's CHECK refuses it, as it would refuse a raw user id.
    writer.push({ type: 'security', id: '00000000-0000-4000-8000-0000000000a2', ...group, kind: 'cross_user', reason: 'forbidden', ownerHash: 'alice@example.com' });
    writer.push({ type: 'security', id: '00000000-0000-4000-8000-0000000000a3', ...group, kind: 'rate_limited', reason: 'status 429' });
    expect(await writer.flush(10_000)).toBe(true);
    await writer.close(1000);
    const { rows } = await opened.db.query<{ id: string }>("SELECT id::text AS id FROM security_events WHERE id::text LIKE '00000000-0000-4000-8000-0000000000a%' ORDER BY id");
    expect(rows.map((row) => row.id)).toEqual(['00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000a3']);
    expect(dropped).toEqual(['1 rejected']);
    expect(writer.status().dropped).toBe(1);
  });
}

describe('audit storage (PGlite)', () => {
  storageSuite(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-audit-'));
    const db = await PgliteDatabase.open(path.join(dir, 'pglite'));
    return {
      db,
      async close() {
        await db.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  });
});

describeWithPostgres('audit storage (PostgreSQL)', () => {
  storageSuite(async () => {
    const testDb = await createTestDatabase();
    const db = pgOpen(testDb.url);
    return {
      db,
      async close() {
        await db.close();
        await testDb.drop();
      },
    };
  });

  describe('on a real server only', () => {
    let testDb: TestDatabase;
    beforeEach(async () => {
      testDb = await createTestDatabase();
    });
    afterEach(() => testDb?.drop());

    it('lets four replicas migrate at once: each migration is applied exactly once', async () => {
      const replicas = Array.from({ length: 4 }, () => pgOpen(testDb.url));
      try {
        const results = await Promise.all(replicas.map((db) => migrate(db, migrations)));
        const applied = results.flatMap((r) => r.applied).sort();
        expect(applied).toEqual(migrations.map((m) => m.version));
        expect(results.filter((r) => r.applied.length === migrations.length)).toHaveLength(1);
      } finally {
        await Promise.all(replicas.map((db) => db.close()));
      }
      expect(await testDb.query('SELECT version FROM schema_migrations ORDER BY version')).toEqual(migrations.map((m) => ({ version: m.version })));
    });

    it('sends a batch again when its commit reply is lost, and nothing is written twice', async () => {
      const forwarder = await TcpForwarder.to(testDb.url).start();
      const db = pgOpen(viaPort(testDb.url, forwarder.port));
      try {
        await migrate(db, migrations);
        forwarder.loseCommitReplies(1);
        const writer = new AuditWriter(db, applyRecord, { flushIntervalMs: 20, retryInitialMs: 20 }, logger).start();
        for (const record of records()) writer.push(record);
        expect(await writer.flush(15_000)).toBe(true);
        await writer.close(1000);
        expect(forwarder.swallowed).toBe(1);
        expect(writer.status()).toMatchObject({ ok: true, dropped: 0 });
        expect(await testDb.query('SELECT count(*)::int AS n FROM proxy_sessions')).toEqual([{ n: 1 }]);
        expect(await testDb.query('SELECT link_id, requests::int AS requests FROM tunnel_sessions ORDER BY link_id')).toEqual([
          { link_id: 't0', requests: 3 },
          { link_id: 't1', requests: 1 },
        ]);
        expect(await testDb.query('SELECT count(*)::int AS n FROM security_events')).toEqual([{ n: 1 }]);
      } finally {
        await db.close();
        await forwarder.close();
      }
    });
  });
});

describe('audit queue while the database is away', () => {
  it('holds records up to its bound, counts what it drops, and says it is failing', async () => {
    // A port nobody listens on: every connection refused, a real outage with no database needed.
    const db = pgOpen(`postgres://ctll:secret@127.0.0.1:${await closedPort()}/nowhere`);
    const dropped: Array<[number, string]> = [];
    const writer = new AuditWriter(db, applyRecord, { flushIntervalMs: 20, maxQueue: 5, retryInitialMs: 20, retryMaxMs: 100 }, logger, {
      onDropped: (n, why) => dropped.push([n, why]),
    }).start();
    for (let i = 0; i < 8; i++) {
      writer.push({ type: 'proxy_started', ownerHash: OWNER, proxyId: String(i), driver: 'process', startedAt: new Date().toISOString() });
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const status = writer.status();
    expect(status).toMatchObject({ ok: false, queued: 5, dropped: 3 });
    expect(status.failure?.error).toMatch(/ECONNREFUSED/);
    expect(status.failure?.error).not.toMatch(/secret/);
    expect(status.failure?.attempts).toBeGreaterThan(1);
    await writer.close(100);
    expect(writer.status().dropped).toBe(8);
    expect(dropped).toEqual([[1, 'overflow'], [1, 'overflow'], [1, 'overflow'], [5, 'shutdown']]);
    await db.close();
  });

  it('never drops a session record for security counts: those have their own bound and their own drop reason', async () => {
    const db = pgOpen(`postgres://ctll:secret@127.0.0.1:${await closedPort()}/nowhere`);
    const dropped: string[] = [];
    const writer = new AuditWriter(db, applyRecord, { flushIntervalMs: 20, maxQueue: 5, maxSecurityQueue: 3, retryInitialMs: 20, retryMaxMs: 100 }, logger, {
      onDropped: (n, why) => dropped.push(`${n} ${why}`),
    }).start();
    const at = new Date().toISOString();
    // A flood of security counts first, then the sessions: the flood must not have taken their room.
    for (let i = 0; i < 10; i++) {
      writer.push({ type: 'security', id: `00000000-0000-4000-8000-0000000000b${i}`, at, lastAt: at, count: 50, source: `198.51.100.${i}`, kind: 'auth_failure', reason: 'invalid_token' });
    }
    for (let i = 0; i < 5; i++) writer.push({ type: 'proxy_started', ownerHash: OWNER, proxyId: String(i), driver: 'process', startedAt: at });
    expect(writer.status()).toMatchObject({ queued: 8, securityQueued: 3, dropped: 7 });
    expect(dropped).toEqual(Array(7).fill('1 security_overflow'));
    await writer.close(50);
    await db.close();
  });
});
