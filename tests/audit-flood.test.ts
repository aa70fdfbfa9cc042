/**
 * The public edge under a refused-token flood: 10,000 real HTTP requests with bad tokens against a
 * real relay on a real PostgreSQL. The audit counts them per source and window instead of writing
 * a row each, and when the database is away for 30 s with the flood still running, the flood's
 * counts wait in their own small queue and never take the place of a session record: every proxy
 * start and stop and every tunnel connection made during the outage arrives once it is back.
 */
import http from 'node:http';
import { userHash } from '../api-backend/src/proxy/naming';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { AUDIT_TEST_ENV, createTestDatabase, describeWithPostgres, TcpForwarder, viaPort, type TestDatabase } from './helpers/postgres';

const FLOOD = 10_000;
const CONCURRENCY = 16;
const WINDOW_MS = 5_000;
const OUTAGE_MS = 30_000;

/** Sends `count` requests with a bad token over `CONCURRENCY` keep-alive connections; resolves to the statuses seen. */
async function flood(baseUrl: string, count: number, agent: http.Agent, shouldStop = () => false): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  let sent = 0;
  const one = (i: number) =>
    new Promise<number>((resolve, reject) => {
      const req = http.get(`${baseUrl}/api/proxy/status`, { agent, headers: { authorization: `Bearer not-a-token-${i}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
  const worker = async () => {
    while (sent < count && !shouldStop()) {
      const status = await one(sent++);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return statuses;
}

describeWithPostgres('security events under a refused-token flood', () => {
  let testDb: TestDatabase;
  let forwarder: TcpForwarder;
  let layout: Layout;
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

  beforeAll(async () => {
    testDb = await createTestDatabase();
    forwarder = await TcpForwarder.to(testDb.url).start();
    layout = await startLayout({
      env: {
        ...AUDIT_TEST_ENV,
        DATABASE_URL: viaPort(testDb.url, forwarder.port),
        DATABASE_CONNECT_TIMEOUT_MS: '1000',
        AUDIT_RETRY_MAX_MS: '400',
        AUDIT_SECURITY_WINDOW_MS: String(WINDOW_MS),
        // Smaller than the flood: one queue for everything would have dropped sessions to hold it.
        AUDIT_QUEUE_MAX: '500',
        // A 30 s outage closes six windows; their counts beyond three are the ones dropped.
        AUDIT_SECURITY_QUEUE_MAX: '3',
        PROXY_IDLE_TIMEOUT_MS: '600000',
      },
    });
  }, 90_000);
  afterAll(async () => {
    agent.destroy();
    await layout?.close();
    await forwarder?.close();
    await testDb?.drop();
  }, 30_000);

  const auth = (userId: string) => ({ authorization: `Bearer ${layout.token(userId)}` });
  const dropped = async (reason: string) => {
    const metrics = await (await fetch(`${layout.relay.metricsUrl}/metrics`)).text();
    return Number(new RegExp(`^ctll_audit_dropped_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
  };

  it(`writes ${FLOOD} refused tokens as a few dozen counted rows, every refusal counted`, async () => {
    const statuses = await flood(layout.relay.url, FLOOD, agent);
    expect(Object.fromEntries(statuses)).toEqual({ 401: FLOOD });
    // The last window closes within WINDOW_MS; then its counts are written.
    await waitFor(
      async () => (await testDb.query<{ n: number }>("SELECT COALESCE(sum(count), 0)::int AS n FROM security_events WHERE reason = 'invalid_token'"))[0].n === FLOOD,
      WINDOW_MS * 4,
      'every refusal counted in security_events',
    );
    const rows = await testDb.query<{ source: string; kind: string; n: number }>(
      'SELECT source, kind, count(*)::int AS n FROM security_events GROUP BY source, kind',
    );
    expect(rows).toEqual([{ source: '127.0.0.1', kind: 'auth_failure', n: expect.any(Number) }]);
    expect(rows[0].n).toBeLessThanOrEqual(36);
    expect(await dropped('security_overflow')).toBe(0);
  }, 240_000);

  it('loses no session record during a 30 s outage with the flood running; the flood loses only its own counts', async () => {
    const users = ['flood-ann', 'flood-ben', 'flood-cid', 'flood-dee'];
    const ROUNDS = 2;
    await forwarder.cut();
    const cutAt = Date.now();
    let stopFlood = false;
    const flooding = flood(layout.relay.url, Number.MAX_SAFE_INTEGER, agent, () => stopFlood);

    // During the outage each user starts a proxy, connects a desktop, disconnects it, and stops the proxy.
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all(
        users.map(async (user) => {
          expect((await fetch(`${layout.relay.url}/api/proxy/start`, { method: 'POST', headers: auth(user) })).status).toBe(201);
          const bridge = await layout.connectBridge(user);
          expect((await layout.fetchAs(user, '/api/tags')).status).toBe(200);
          await bridge.close();
          await waitFor(
            async () => {
              const status = (await (await fetch(`${layout.relay.url}/api/proxy/status`, { headers: auth(user) })).json()) as { desktop?: { connected: boolean } };
              return status.desktop?.connected === false;
            },
            10_000,
            'the proxy to see the bridge leave',
          );
          expect(await (await fetch(`${layout.relay.url}/api/proxy/stop`, { method: 'POST', headers: auth(user) })).json()).toMatchObject({ stopped: true });
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - cutAt))));
    expect(layout.relay.audit.writer.status().ok).toBe(false);
    stopFlood = true;
    const refused = await flooding;
    expect([...refused.keys()]).toEqual([401]);
    expect(refused.get(401)).toBeGreaterThan(100);

    await forwarder.restore();
    await waitFor(
      async () => {
        const status = layout.relay.audit.writer.status();
        return status.ok && status.queued === 0;
      },
      30_000,
      'the queue to drain after the database came back',
    );
    expect(await dropped('overflow')).toBe(0);
    expect(await dropped('shutdown')).toBe(0);
    // The flood's own counts overflowed their small queue: they, not the sessions, were dropped.
    expect(await dropped('security_overflow')).toBeGreaterThan(0);

    for (const user of users) {
      const proxies = await testDb.query<{ stop_reason: string | null }>('SELECT stop_reason FROM proxy_sessions WHERE owner_hash = $1', [userHash(user)]);
      expect(proxies.map((row) => row.stop_reason)).toEqual(Array(ROUNDS).fill('user'));
      await waitFor(
        async () => {
          const tunnels = await testDb.query<{ closed: boolean; client: string | null }>(
            'SELECT disconnected_at IS NOT NULL AS closed, client FROM tunnel_sessions WHERE owner_hash = $1',
            [userHash(user)],
          );
          return tunnels.length === ROUNDS && tunnels.every((tunnel) => tunnel.closed && tunnel.client?.startsWith('ctll-bridge/'));
        },
        10_000,
        `both tunnel sessions of ${user}, closed`,
      );
    }
  }, 240_000);
});
