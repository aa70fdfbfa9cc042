/**
 * The zrok share registry on its real store, against both database drivers: PGlite always,
 * PostgreSQL when a server answers (required in CI). Time is the registry's own clock, moved by hand.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import winston from 'winston';
import { BadRequestError, NotFoundError } from '@ctll/protocol';
import type { Database } from '../src/audit/database';
import { loadMigrations, migrate } from '../src/audit/migrations';
import { PgDatabase } from '../src/audit/pg-database';
import { PgliteDatabase } from '../src/audit/pglite-database';
import { ShareRegistry } from '../src/zrok/registry';
import { seedPglite } from '../../tests/helpers/pglite-template';
import { createTestDatabase, describeWithPostgres } from '../../tests/helpers/postgres';

const migrations = loadMigrations(path.resolve(__dirname, '../../postgres/migrations'));
const quiet = winston.createLogger({ silent: true });

function registrySuite(open: () => Promise<{ db: Database; close(): Promise<void> }>): void {
  let now: number;
  let lines: string[];
  let registry: ShareRegistry;
  let opened: { db: Database; close(): Promise<void> };
  const alice = 'a'.repeat(16);
  const bob = 'b'.repeat(16);
  const share = (n = 1) => ({ publicUrl: `https://s${n}.share.zrok.io`, shareToken: `secret-token-${n}`, localUrl: 'http://127.0.0.1:11434' });
  const registryAt = (db: Database) => {
    const logger = winston.createLogger({
      transports: [new winston.transports.Console({ silent: true })],
      format: winston.format.printf((info) => {
        lines.push(JSON.stringify(info));
        return '';
      }),
    });
    return new ShareRegistry(db, { ttlMs: 9000, maxSharesPerUser: 2, now: () => now }, logger);
  };

  beforeAll(async () => {
    opened = await open();
    await migrate(opened.db, migrations);
  }, 60_000);
  afterAll(() => opened?.close());

  beforeEach(async () => {
    await opened.db.query('DELETE FROM zrok_shares');
    now = 1_000_000;
    lines = [];
    registry = registryAt(opened.db);
  });

  it('keeps a share alive while it heartbeats and drops it one TTL after the last beat', async () => {
    const { record } = await registry.register(alice, share());
    expect(registry.heartbeatIntervalMs).toBe(3000);
    now += 8000;
    await registry.heartbeat(alice, record.tunnelId);
    now += 8000;
    expect((await registry.list(alice)).map((r) => r.tunnelId)).toEqual([record.tunnelId]);
    now += 1000;
    expect(await registry.list(alice)).toEqual([]);
    await expect(registry.heartbeat(alice, record.tunnelId)).rejects.toThrow(NotFoundError);
  });

  it('frees expired shares on a sweep', async () => {
    await registry.register(alice, share(1));
    await registry.register(bob, share(2));
    now += 9000;
    expect(await registry.sweep()).toBe(2);
    expect(await registry.sweep()).toBe(0);
  });

  it("treats another user's tunnel id exactly like an unknown one", async () => {
    const { record } = await registry.register(alice, share());
    for (const act of [() => registry.get(bob, record.tunnelId), () => registry.heartbeat(bob, record.tunnelId), () => registry.unregister(bob, record.tunnelId)]) {
      await expect(act()).rejects.toThrow(NotFoundError);
    }
    expect(await registry.list(bob)).toEqual([]);
    expect((await registry.get(alice, record.tunnelId)).publicUrl).toBe(share().publicUrl);
  });

  it('answers an id that cannot be a share (NUL, other shapes) as unknown, never as a database error', async () => {
    await registry.register(alice, share());
    for (const id of ['\u0000', 'zt\u0000', 'ZT' + '0'.repeat(24), "zt'; DROP TABLE zrok_shares; --", 'x'.repeat(5000)]) {
      for (const act of [() => registry.get(alice, id), () => registry.heartbeat(alice, id), () => registry.unregister(alice, id)]) {
        await expect(act()).rejects.toThrow(NotFoundError);
      }
    }
    expect(await registry.list(alice)).toHaveLength(1);
  });

  it('re-registering the same URL refreshes the share and keeps its id; the limit counts distinct shares', async () => {
    const first = await registry.register(alice, share(1));
    now += 5000;
    const again = await registry.register(alice, { ...share(1), shareToken: undefined });
    expect(again).toMatchObject({ created: false });
    expect(again.record.tunnelId).toBe(first.record.tunnelId);
    expect(again.record.shareToken).toBeUndefined();
    expect(again.record.expiresAt).toBe(now + 9000);
    now += 1;
    await registry.register(alice, share(2));
    await expect(registry.register(alice, share(3))).rejects.toThrow(BadRequestError);
    expect((await registry.list(alice))[0].publicUrl).toBe(share(2).publicUrl); // most recently heard from first
  });

  it('a share registered through one registry is found, beaten and removed through another on the same database', async () => {
    const other = registryAt(opened.db);
    const { record } = await registry.register(alice, share());
    expect((await other.list(alice)).map((r) => [r.tunnelId, r.shareToken])).toEqual([[record.tunnelId, share().shareToken]]);
    now += 8000;
    await other.heartbeat(alice, record.tunnelId);
    now += 8000;
    expect((await registry.get(alice, record.tunnelId)).expiresAt).toBe(now - 8000 + 9000);
    await other.unregister(alice, record.tunnelId);
    await expect(registry.get(alice, record.tunnelId)).rejects.toThrow(NotFoundError);
  });

  it('concurrent registers through two registries never pass the per-user limit', async () => {
    const other = registryAt(opened.db);
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => (n % 2 ? registry : other).register(alice, share(n))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason)).toEqual([
      expect.any(BadRequestError),
      expect.any(BadRequestError),
    ]);
    expect(await registry.list(alice)).toHaveLength(2);
  });

  it('never logs share URLs or tokens', async () => {
    const { record } = await registry.register(alice, share());
    await registry.unregister(alice, record.tunnelId);
    await registry.register(alice, share(2));
    now += 10_000;
    await registry.sweep();
    expect(lines.length).toBe(4); // registered, unregistered, registered, expired
    for (const line of lines) {
      expect(line).not.toMatch(/zrok\.io|secret-token|127\.0\.0\.1/);
      expect(line).toContain(alice);
    }
  });
}

describe('ShareRegistry (PGlite)', () => {
  registrySuite(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-zrok-'));
    await seedPglite(dir);
    const db = await PgliteDatabase.open(path.join(dir, 'pglite'));
    return {
      db,
      close: async () => {
        await db.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  });
});

describeWithPostgres('ShareRegistry (PostgreSQL)', () => {
  registrySuite(async () => {
    const test = await createTestDatabase();
    const db = new PgDatabase({ url: test.url, poolSize: 4, connectTimeoutMs: 3000, logger: quiet });
    return {
      db,
      close: async () => {
        await db.close();
        await test.drop();
      },
    };
  });
});
