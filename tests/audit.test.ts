/**
 * The session audit end to end, as a user and an operator meet it: real bridges streaming through
 * the relay, proxies stopped by their user, culled when idle and stopped at shutdown, and what
 * that leaves in the database and in `GET /api/audit/sessions`. Runs on the embedded PGlite and on
 * a real PostgreSQL server (required in CI).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Ollama } from 'ollama';
import type { Bridge } from '../bridge/src';
import type { Queryable } from '../api-backend/src/audit/database';
import { PgliteDatabase } from '../api-backend/src/audit/pglite-database';
import type { SessionView, TunnelSessionView } from '../api-backend/src/audit/sessions';
import { userHash } from '../api-backend/src/proxy/naming';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { TRANSPORTS } from './helpers/matrix';
import { AUDIT_TEST_ENV, createTestDatabase, describeWithPostgres, type TestDatabase } from './helpers/postgres';

interface Backend {
  /** Extra api-backend environment (DATABASE_URL for PostgreSQL). */
  env(): Promise<Record<string, string>>;
  /** The database after the relay has closed it. */
  afterShutdown(layout: Layout): Promise<Queryable & { close(): Promise<void> }>;
  teardown(): Promise<void>;
}

type Page = { sessions: SessionView[]; next: string | null };

function auditSuite(backend: Backend): void {
  let layout: Layout;
  const bridges: Bridge[] = [];

  beforeAll(async () => {
    layout = await startLayout({ env: { ...AUDIT_TEST_ENV, ...(await backend.env()) }, llm: { tokenDelayMs: 5, tokens: 8 } });
  }, 90_000);
  afterAll(async () => {
    await Promise.all(bridges.map((bridge) => bridge.close()));
    await layout?.close();
    await backend.teardown();
  }, 30_000);

  const auth = (userId: string) => ({ authorization: `Bearer ${layout.token(userId)}` });
  const api = (route: string, userId: string, method = 'GET') => fetch(`${layout.relay.url}${route}`, { method, headers: auth(userId) });
  const sessionsOf = async (userId: string, query = '?limit=100'): Promise<Page> => {
    const res = await api(`/api/audit/sessions${query}`, userId);
    expect(res.status).toBe(200);
    return (await res.json()) as Page;
  };
  const waitForSession = async <S extends SessionView>(userId: string, match: (s: SessionView) => s is S, what: string): Promise<S> => {
    let found: S | undefined;
    await waitFor(async () => Boolean((found = (await sessionsOf(userId)).sessions.find(match))), 20_000, what);
    return found!;
  };
  const db = () => layout.relay.audit.database;
  const isClosedTunnel = (s: SessionView): s is TunnelSessionView => s.kind === 'tunnel' && s.endedAt !== null;

  it('reports the database in /health/details on the private port', async () => {
    const res = await fetch(`${layout.relay.metricsUrl}/health/details`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; checks: { database: unknown } };
    expect(body.status).toBe('ok');
    expect(body.checks.database).toEqual({ ok: true, detail: expect.any(String), queued: expect.any(Number), dropped: 0 });
  });

  it.each(TRANSPORTS)('records a streamed chat over %s: transport, bridge client, requests and bytes', async (transport) => {
    const user = `chatter-${transport}`;
    const bridge = await layout.connectBridge(user, { transport });
    const ollama = new Ollama({ host: layout.tunnelUrl(user), headers: auth(user) });
    let text = '';
    for await (const part of await ollama.chat({ model: 'test-model', messages: [{ role: 'user', content: 'Hello' }], stream: true })) {
      text += part.message.content;
    }
    expect(text).toBe('tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 ');
    await bridge.close();

    const tunnel = await waitForSession(user, isClosedTunnel, 'the closed tunnel session');
    expect(tunnel).toMatchObject({ transport, startedAt: expect.any(String), endedAt: expect.any(String) });
    expect(tunnel.client).toMatch(/^ctll-bridge\/\d+\.\d+\.\d+/);
    expect(tunnel.requests).toBeGreaterThanOrEqual(1);
    expect(tunnel.bytesToDesktop).toBeGreaterThan(0);
    expect(tunnel.bytesFromDesktop).toBeGreaterThan(text.length);
    expect(Date.parse(tunnel.endedAt!)).toBeGreaterThanOrEqual(Date.parse(tunnel.startedAt!));

    // The row itself: the owner is a hash, and the client is the bridge's name and version only.
    const { rows } = await db().query<{ owner_hash: string; client: string; transport: string }>(
      'SELECT owner_hash, client, transport FROM tunnel_sessions WHERE owner_hash = $1',
      [userHash(user)],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].client).toMatch(/^ctll-bridge\/[^\s]+$/);
  });

  it('records a stop by the user, and closes the connected desktop’s session as cut by the stop', async () => {
    const user = 'stopper';
    const bridge = await layout.connectBridge(user);
    bridges.push(bridge);
    expect((await layout.fetchAs(user, '/api/tags')).status).toBe(200);
    const stop = await api('/api/proxy/stop', user, 'POST');
    expect(await stop.json()).toMatchObject({ stopped: true });

    const proxy = await waitForSession(user, (s): s is SessionView => s.kind === 'proxy' && s.reason === 'user', 'a proxy session stopped by the user');
    expect(proxy).toMatchObject({ kind: 'proxy', driver: 'process', startedAt: expect.any(String), endedAt: expect.any(String) });
    const cut = await waitForSession(user, (s): s is TunnelSessionView => s.kind === 'tunnel' && s.reason === 'proxy stopped (user)', 'the cut tunnel session');
    expect(cut).toMatchObject({ transport: 'ws', endedAt: expect.any(String) });
    expect(Date.parse(cut.endedAt!)).toBeLessThanOrEqual(Date.parse(proxy.endedAt!));
    // Counts of a cut connection are known only if the proxy reports them per connection.
    if (cut.requests !== null) expect(cut.requests).toBeGreaterThanOrEqual(1);
    await bridge.close();
  });

  it('records an idle cull with reason idle', async () => {
    const user = 'idler';
    expect((await api('/api/proxy/start', user, 'POST')).status).toBe(201);
    const proxy = await waitForSession(user, (s): s is SessionView => s.kind === 'proxy' && s.endedAt !== null, 'the culled proxy session');
    expect(proxy).toMatchObject({ kind: 'proxy', reason: 'idle' });
  });

  it('records a proxy that died on its own with reason error, and closes its desktop’s session', async () => {
    const user = 'crasher';
    const bridge = await layout.connectBridge(user);
    await waitFor(async () => (await sessionsOf(user)).sessions.some((s) => s.kind === 'tunnel'), 10_000, 'the tunnel session');
    const [handle] = (await layout.relay.manager.driver.list()).filter((h) => h.ownerHash === userHash(user));
    process.kill(Number(handle.id), 'SIGKILL');
    const died = await waitForSession(user, (s): s is SessionView => s.kind === 'proxy' && s.reason === 'error', 'the dead proxy session');
    expect(died.endedAt).toEqual(expect.any(String));
    const cut = await waitForSession(user, (s): s is TunnelSessionView => s.kind === 'tunnel' && s.reason === 'proxy exited', 'the cut tunnel session');
    expect(Date.parse(cut.endedAt!)).toBe(Date.parse(died.endedAt!));
    await bridge.close();
  });

  it('pages a user’s sessions newest first with a cursor', async () => {
    const user = 'pager';
    for (let i = 0; i < 3; i++) {
      await api('/api/proxy/start', user, 'POST');
      await api('/api/proxy/stop', user, 'POST');
    }
    await waitFor(async () => (await sessionsOf(user)).sessions.filter((s) => s.reason === 'user').length === 3, 10_000, 'three stopped sessions');
    const all = (await sessionsOf(user)).sessions;
    expect(all).toHaveLength(3);
    const starts = all.map((s) => Date.parse(s.startedAt!));
    expect([...starts].sort((a, b) => b - a)).toEqual(starts);

    const paged: SessionView[] = [];
    let query = '?limit=1';
    for (;;) {
      const page = await sessionsOf(user, query);
      expect(page.sessions.length).toBeLessThanOrEqual(1);
      paged.push(...page.sessions);
      if (!page.next) break;
      query = `?limit=1&cursor=${encodeURIComponent(page.next)}`;
    }
    expect(paged).toEqual(all);
  });

  it('shows each user only their own sessions', async () => {
    const mine = await sessionsOf('stopper');
    const theirs = await sessionsOf('pager');
    expect(mine.sessions.length).toBeGreaterThan(0);
    expect(theirs.sessions.length).toBeGreaterThan(0);
    const ids = new Set(mine.sessions.map((s) => s.id));
    expect(theirs.sessions.filter((s) => ids.has(s.id))).toEqual([]);
    // What the API shows is exactly what the database holds for that owner hash.
    for (const [user, page] of [['stopper', mine], ['pager', theirs]] as const) {
      const { rows } = await db().query<{ n: number }>(
        'SELECT (SELECT count(*) FROM proxy_sessions WHERE owner_hash = $1) + (SELECT count(*) FROM tunnel_sessions WHERE owner_hash = $1) AS n',
        [userHash(user)],
      );
      expect(Number(rows[0].n)).toBe(page.sessions.length);
    }
    expect(await sessionsOf('a-stranger')).toEqual({ sessions: [], next: null });
    // No parameter names a user: asking with someone else's name changes nothing.
    expect((await api('/api/audit/sessions?user=pager', 'a-stranger')).status).toBe(400);
  });

  it.each([
    ['limit=abc', 'bad_request'],
    ['limit=0', 'bad_request'],
    ['limit=101', 'bad_request'],
    ['limit=1&limit=2', 'bad_request'],
    ['cursor=bm9wZQ', 'bad_cursor'],
    ['cursor=', 'bad_cursor'],
    ['owner=x', 'bad_request'],
  ])('refuses ?%s with 400', async (query, code) => {
    const res = await api(`/api/audit/sessions?${query}`, 'pager');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
  });

  it('wants a token for the history', async () => {
    expect((await fetch(`${layout.relay.url}/api/audit/sessions`)).status).toBe(401);
  });

  it('records refused tokens and cross-user attempts, with hashes only', async () => {
    expect((await fetch(`${layout.relay.url}/api/proxy/status`, { headers: { authorization: 'Bearer not-a-jwt' } })).status).toBe(401);
    expect((await fetch(`${layout.relay.url}/api/proxy/status`)).status).toBe(401);
    expect((await fetch(`${layout.tunnelUrl('stopper')}/api/tags`, { headers: auth('mallory') })).status).toBe(403);

    // Counted per window (half a second here), then written.
    const query = 'SELECT kind, reason, owner_hash, target_hash, route, source, count FROM security_events ORDER BY at';
    await waitFor(
      async () => {
        const reasons = new Set((await db().query<{ reason: string }>(query)).rows.map((row) => row.reason));
        return ['invalid_token', 'credentials_required', 'forbidden'].every((reason) => reasons.has(reason));
      },
      10_000,
      'the security counts written',
    );
    const { rows } = await db().query<Record<string, string | number | null>>(query);
    const plain = rows.map((row) => ({ ...row }));
    expect(plain).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'auth_failure', reason: 'invalid_token', owner_hash: null, source: '127.0.0.1', count: 1 }),
        expect.objectContaining({ kind: 'auth_failure', reason: 'credentials_required' }),
        expect.objectContaining({ kind: 'cross_user', reason: 'forbidden', owner_hash: userHash('mallory'), target_hash: userHash('stopper'), route: expect.stringMatching(/^\/api\/tunnel\/:userId/) }),
      ]),
    );
    const text = JSON.stringify(plain);
    for (const secret of ['mallory', 'stopper', 'not-a-jwt', 'Bearer']) expect(text).not.toContain(secret);
  });

  it('loses nothing: no record dropped, in /health and /metrics', async () => {
    const health = (await (await fetch(`${layout.relay.metricsUrl}/health/details`)).json()) as { checks: { database: { dropped: number } } };
    expect(health.checks.database.dropped).toBe(0);
    const metrics = await (await fetch(`${layout.relay.metricsUrl}/metrics`)).text();
    for (const reason of ['overflow', 'rejected', 'shutdown']) expect(metrics).toContain(`ctll_audit_dropped_total{reason="${reason}"} 0`);
    expect(metrics).toMatch(/^ctll_audit_written_total [1-9]\d*$/m);
  });

  it('records shutdown: running proxies stop with reason shutdown and connected desktops are told the relay restarts', async () => {
    const user = 'stayer';
    bridges.push(await layout.connectBridge(user));
    expect((await layout.fetchAs(user, '/api/tags')).status).toBe(200);
    await waitFor(async () => (await sessionsOf(user)).sessions.some((s) => s.kind === 'tunnel'), 10_000, 'the open tunnel session');
    await layout.relay.close();
    expect(layout.relay.audit.writer.status()).toMatchObject({ queued: 0, dropped: 0 });

    const after = await backend.afterShutdown(layout);
    try {
      const open = await after.query<{ n: number }>(
        'SELECT (SELECT count(*) FROM proxy_sessions WHERE stopped_at IS NULL) + (SELECT count(*) FROM tunnel_sessions WHERE disconnected_at IS NULL) AS n',
      );
      expect(Number(open.rows[0].n)).toBe(0);
      const proxies = await after.query<{ stop_reason: string }>('SELECT stop_reason FROM proxy_sessions WHERE owner_hash = $1', [userHash(user)]);
      expect(proxies.rows.map((row) => row.stop_reason)).toEqual(['shutdown']);
      const tunnels = await after.query<{ close_reason: string }>('SELECT close_reason FROM tunnel_sessions WHERE owner_hash = $1', [userHash(user)]);
      // The tunnel ended before its proxy did: closed with 1012 for the bridge to reconnect to the next api-backend.
      expect(tunnels.rows.map((row) => row.close_reason)).toEqual(['1012 relay restarting']);
      const reasons = await after.query<{ stop_reason: string }>('SELECT DISTINCT stop_reason FROM proxy_sessions ORDER BY stop_reason');
      expect(reasons.rows.map((row) => row.stop_reason)).toEqual(expect.arrayContaining(['idle', 'shutdown', 'user']));
    } finally {
      await after.close();
    }
  });
}

describe('session audit (PGlite)', () => {
  auditSuite({
    env: async () => ({}),
    async afterShutdown(layout) {
      const dir = path.join(layout.dataDir, 'pglite');
      expect(fs.existsSync(dir)).toBe(true);
      return PgliteDatabase.open(dir);
    },
    teardown: async () => undefined,
  });
});

describeWithPostgres('session audit (PostgreSQL)', () => {
  let testDb: TestDatabase | undefined;
  auditSuite({
    async env() {
      testDb = await createTestDatabase();
      return { DATABASE_URL: testDb.url };
    },
    async afterShutdown() {
      return {
        query: async <R extends object>(sql: string, params: readonly unknown[] = []) => {
          const rows = (await testDb!.query(sql, params)) as R[];
          return { rows, rowCount: rows.length };
        },
        close: async () => {},
      };
    },
    teardown: async () => testDb?.drop(),
  });
});
