/**
 * The relay-key checker on a real PostgreSQL database (required in CI), with two checkers standing
 * for two api-backends sharing it and a clock the test moves: a busy key costs one query per cache
 * window, however many requests present it; a key revoked through one checker is refused by the
 * other once its window is over; a key's use is reported about once a minute; and a database that
 * cannot be reached is a 503 whose body names nothing of ours.
 */
import path from 'node:path';
import winston from 'winston';
import type { Database, QueryResult, SqlParam } from '../api-backend/src/audit/database';
import { loadMigrations, migrate } from '../api-backend/src/audit/migrations';
import { PgDatabase } from '../api-backend/src/audit/pg-database';
import { CACHE_MS, LAST_USED_PRECISION_MS, RelayKeys } from '../api-backend/src/auth/relay-keys';
import { createTestDatabase, describeWithPostgres, TcpForwarder, viaPort, type TestDatabase } from './helpers/postgres';

const logger = winston.createLogger({ silent: true });

/** The real database, with the statements that reach it counted. */
function counted(db: Database) {
  const queries: string[] = [];
  return {
    queries,
    query<R extends object>(sql: string, params?: readonly SqlParam[]): Promise<QueryResult<R>> {
      queries.push(sql.trim().split(/\s+/)[0]);
      return db.query<R>(sql, params);
    },
  };
}

describeWithPostgres('relay keys checked against PostgreSQL', () => {
  let testDb: TestDatabase;
  let db: Database;
  let forwarder: TcpForwarder;
  let viaForwarder: Database;
  let clock = Date.now();
  const now = () => clock;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = new PgDatabase({ url: testDb.url, poolSize: 4, connectTimeoutMs: 3000, logger });
    await migrate(db, loadMigrations(path.resolve(__dirname, '../postgres/migrations')));
    forwarder = await TcpForwarder.to(testDb.url).start();
    viaForwarder = new PgDatabase({ url: viaPort(testDb.url, forwarder.port), poolSize: 2, connectTimeoutMs: 1000, logger });
  });
  afterAll(async () => {
    await viaForwarder?.close();
    await forwarder?.close();
    await db?.close();
    await testDb?.drop();
  });

  it('asks the database once per key and cache window, however many requests present the key', async () => {
    const here = counted(db);
    const keys = new RelayKeys(here, undefined, now);
    const { key } = await keys.create('ann', { name: 'busy script', scope: 'call' });
    here.queries.length = 0;

    const answers = await Promise.all(Array.from({ length: 20 }, () => keys.verify(key)));
    for (let i = 0; i < 20; i++) answers.push(await keys.verify(key));
    expect(new Set(answers.map((answer) => JSON.stringify(answer)))).toEqual(new Set([JSON.stringify({ id: answers[0].id, userId: 'ann', scope: 'call' })]));
    expect(here.queries).toEqual(['SELECT']);

    clock += CACHE_MS;
    await keys.verify(key);
    expect(here.queries).toEqual(['SELECT', 'SELECT']);
  });

  it('refuses a key revoked through another api-backend once the cache window is over', async () => {
    const one = new RelayKeys(db, undefined, now);
    const other = new RelayKeys(db, undefined, now);
    const made = await one.create('ben', { name: 'cron', scope: 'call' });
    await expect(other.verify(made.key)).resolves.toMatchObject({ userId: 'ben' });

    await one.revoke('ben', made.id);
    await expect(one.verify(made.key)).rejects.toMatchObject({ status: 401, reason: 'relay_key_unknown' });
    clock += CACHE_MS;
    await expect(other.verify(made.key)).rejects.toMatchObject({ status: 401, reason: 'relay_key_unknown' });
  });

  it('reports a key as used about once a minute, not once per request', async () => {
    const uses: string[] = [];
    const keys = new RelayKeys(db, (keyId, at) => uses.push(`${keyId}@${at.getTime()}`), now);
    const made = await keys.create('cid', { name: 'pc', scope: 'bridge' });
    const first = clock;
    await keys.verify(made.key);
    await keys.verify(made.key);
    clock += CACHE_MS;
    await keys.verify(made.key);
    expect(uses).toEqual([`${made.id}@${first}`]);
    clock += LAST_USED_PRECISION_MS;
    await keys.verify(made.key);
    expect(uses).toEqual([`${made.id}@${first}`, `${made.id}@${clock}`]);
  });

  it('answers 503 auth_unavailable while the database cannot be reached, naming nothing of ours', async () => {
    const keys = new RelayKeys(viaForwarder, undefined, now);
    const made = await keys.create('dan', { name: 'script', scope: 'call' });
    clock += CACHE_MS;
    await forwarder.cut();
    try {
      const refusal = await keys.verify(made.key).then(
        () => undefined,
        (error: { status: number; toJSON(): unknown }) => error,
      );
      expect(refusal?.status).toBe(503);
      expect(refusal?.toJSON()).toEqual({ error: { code: 'auth_unavailable', message: 'cannot check relay keys right now; try again later' } });
    } finally {
      await forwarder.restore();
    }
    await expect(keys.verify(made.key)).resolves.toMatchObject({ userId: 'dan' });
  });
});
