/**
 * The audit through a real database outage: api-backend reaches PostgreSQL through a TCP hop that
 * the test cuts (every connection reset, new ones refused) while users keep chatting, stopping
 * proxies and being refused, then restores, with the first commit reply after the return lost on
 * top. Every fact must arrive, none twice, and the relay must not notice beyond /health.
 */
import { Ollama } from 'ollama';
import { userHash } from '../api-backend/src/proxy/naming';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { AUDIT_TEST_ENV, createTestDatabase, describeWithPostgres, TcpForwarder, viaPort, type TestDatabase } from './helpers/postgres';

interface Health {
  status: string;
  checks: { database: { ok: boolean; detail: string; queued: number; dropped: number } };
}

describeWithPostgres('session audit while PostgreSQL is away', () => {
  let testDb: TestDatabase;
  let forwarder: TcpForwarder;
  let layout: Layout;
  const users = ['outage-ann', 'outage-ben', 'outage-cid'];
  const ROUNDS = 2;
  const REFUSED_TOKENS = 5;
  const CROSS_USER = 3;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    forwarder = await TcpForwarder.to(testDb.url).start();
    layout = await startLayout({
      env: {
        ...AUDIT_TEST_ENV,
        DATABASE_URL: viaPort(testDb.url, forwarder.port),
        DATABASE_CONNECT_TIMEOUT_MS: '1000',
        AUDIT_RETRY_MAX_MS: '400',
        // Only the test stops proxies here, so the counts are exact.
        PROXY_IDLE_TIMEOUT_MS: '600000',
        // The database is checked in the background; often, so its outage shows within the wait below.
        HEALTH_CHECK_INTERVAL_MS: '250',
      },
      llm: { tokenDelayMs: 5, tokens: 6 },
    });
  }, 90_000);
  afterAll(async () => {
    await layout?.close();
    await forwarder?.close();
    await testDb?.drop();
  }, 30_000);

  const health = async (): Promise<{ code: number; body: Health }> => {
    const res = await fetch(`${layout.relay.metricsUrl}/health/details`);
    return { code: res.status, body: (await res.json()) as Health };
  };
  const auth = (userId: string) => ({ authorization: `Bearer ${layout.token(userId)}` });

  /** One user's session: a bridge connects, a chat streams, the bridge leaves, the user stops the proxy. */
  async function session(user: string): Promise<void> {
    const bridge = await layout.connectBridge(user);
    const ollama = new Ollama({ host: layout.tunnelUrl(user), headers: auth(user) });
    let text = '';
    for await (const part of await ollama.chat({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }], stream: true })) {
      text += part.message.content;
    }
    expect(text).toBe('tok0 tok1 tok2 tok3 tok4 tok5 ');
    await bridge.close();
    await waitFor(
      async () => {
        const status = (await (await fetch(`${layout.relay.url}/api/proxy/status`, { headers: auth(user) })).json()) as { desktop?: { connected: boolean } };
        return status.desktop?.connected === false;
      },
      10_000,
      'the proxy to see the bridge leave',
    );
    const stop = await fetch(`${layout.relay.url}/api/proxy/stop`, { method: 'POST', headers: auth(user) });
    expect(await stop.json()).toMatchObject({ stopped: true });
  }

  it('keeps every event while the database is away and writes each exactly once when it is back', async () => {
    expect((await health()).body.checks.database).toMatchObject({ ok: true, queued: 0, dropped: 0 });

    await forwarder.cut();
    // The relay carries on: chats, stops and refusals all happen with no database behind it.
    for (let round = 0; round < ROUNDS; round++) await Promise.all(users.map(session));
    for (let i = 0; i < REFUSED_TOKENS; i++) {
      expect((await fetch(`${layout.relay.url}/api/proxy/status`, { headers: { authorization: 'Bearer nonsense' } })).status).toBe(401);
    }
    for (let i = 0; i < CROSS_USER; i++) {
      expect((await fetch(`${layout.tunnelUrl(users[0])}/api/tags`, { headers: auth('outage-eve') })).status).toBe(403);
    }

    await waitFor(async () => (await health()).body.checks.database.ok === false, 10_000, '/health to report the database down');
    const down = await health();
    // Degraded, yet 200: an orchestrator must not restart api-backend (and lose its queue) over it.
    expect(down.code).toBe(200);
    expect(down.body.status).toBe('degraded');
    // Sessions wait one record each; the refusals wait as a few per-window counts beside them.
    const sessionRecords = users.length * ROUNDS * 4;
    await waitFor(async () => layout.relay.audit.writer.status().securityQueued > 0, 10_000, 'the refusals counted and queued');
    const queued = layout.relay.audit.writer.status();
    expect(queued.queued - queued.securityQueued).toBe(sessionRecords);
    expect(down.body.checks.database.dropped).toBe(0);
    expect(await testDb.query('SELECT count(*)::int AS n FROM proxy_sessions')).toEqual([{ n: 0 }]);

    // Back, and the first batch's commit reply is lost on the way: it is sent again.
    forwarder.loseCommitReplies(1);
    await forwarder.restore();
    await waitFor(
      async () => {
        const { body } = await health();
        return body.checks.database.ok && body.checks.database.queued === 0;
      },
      20_000,
      'the queue to drain after the database came back',
    );
    expect(forwarder.swallowed).toBe(1);
    expect((await health()).body).toMatchObject({ status: 'ok', checks: { database: { ok: true, queued: 0, dropped: 0 } } });

    for (const user of users) {
      const proxies = await testDb.query<{ stop_reason: string | null }>('SELECT stop_reason FROM proxy_sessions WHERE owner_hash = $1', [userHash(user)]);
      expect(proxies.map((row) => row.stop_reason)).toEqual(Array(ROUNDS).fill('user'));
      const tunnels = await testDb.query<{ transport: string; client: string; requests: number; to: number; from: number; closed: boolean }>(
        `SELECT transport, client, requests::int AS requests, bytes_to_desktop::int AS to, bytes_from_desktop::int AS from,
                disconnected_at IS NOT NULL AS closed
         FROM tunnel_sessions WHERE owner_hash = $1`,
        [userHash(user)],
      );
      expect(tunnels).toHaveLength(ROUNDS);
      for (const tunnel of tunnels) {
        expect(tunnel).toMatchObject({ transport: 'ws', closed: true, requests: 1 });
        expect(tunnel.client).toMatch(/^ctll-bridge\//);
        expect(tunnel.to).toBeGreaterThan(0);
        expect(tunnel.from).toBeGreaterThan(0);
      }
    }
    const security = await testDb.query<{ kind: string; reason: string; n: number }>(
      'SELECT kind, reason, sum(count)::int AS n FROM security_events GROUP BY kind, reason ORDER BY kind, reason',
    );
    expect(security).toEqual([
      { kind: 'auth_failure', reason: 'invalid_token', n: REFUSED_TOKENS },
      { kind: 'cross_user', reason: 'forbidden', n: CROSS_USER },
    ]);
    const [{ rows: securityRows }] = await testDb.query<{ rows: number }>('SELECT count(*)::int AS rows FROM security_events');
    const metrics = await (await fetch(`${layout.relay.metricsUrl}/metrics`)).text();
    expect(metrics).toContain(`ctll_audit_written_total ${sessionRecords + securityRows}`);
  });
});
