/**
 * The audit's journal pull with many proxies, one of them frozen: desktops connecting and leaving
 * at the other proxies are still recorded, read because api-backend saw that activity (the idle
 * re-read is set far beyond the test, so nothing else reads them), while the frozen proxy's failed
 * reads are counted in /metrics and never hold up the rest.
 */
import { userHash } from '../api-backend/src/proxy/naming';
import { mapLimit } from '../api-backend/src/proxy/map-limit';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { AUDIT_TEST_ENV, createTestDatabase, describeWithPostgres, type TestDatabase } from './helpers/postgres';

const PROXIES = 20;

describeWithPostgres('audit journal pull with many proxies and one that never answers', () => {
  let testDb: TestDatabase;
  let layout: Layout;
  let frozenPid: number | undefined;
  const users = Array.from({ length: PROXIES }, (_, i) => `pull-${i}`);
  const frozen = users[0];
  const others = users.slice(1);

  beforeAll(async () => {
    testDb = await createTestDatabase();
    layout = await startLayout({
      env: { ...AUDIT_TEST_ENV, DATABASE_URL: testDb.url, AUDIT_IDLE_PULL_INTERVAL_MS: '600000', PROXY_IDLE_TIMEOUT_MS: '600000', PROXY_START_TIMEOUT_MS: '60000' },
    });
  }, 90_000);
  afterAll(async () => {
    if (frozenPid) process.kill(frozenPid, 'SIGCONT');
    await layout?.close();
    await testDb?.drop();
  }, 60_000);

  const failures = async () => {
    const metrics = await (await fetch(`${layout.relay.metricsUrl}/metrics`)).text();
    return Number(/^ctll_proxy_pull_failures_total\{loop="audit_pull"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
  };

  it('records every other proxy’s tunnel sessions and counts the frozen one’s failed reads', async () => {
    await mapLimit(users, 2, async (user) => expect((await layout.relay.manager.ensure(user)).created).toBe(true));
    const handle = await layout.relay.manager.driver.inspect(userHash(frozen));
    frozenPid = Number(handle?.id);
    expect(frozenPid).toBeGreaterThan(0);
    process.kill(frozenPid, 'SIGSTOP'); // still listed as running; its journal never answers

    // A full round over all proxies, now: it reaches the frozen one and fails there, for it alone.
    const fullRound = layout.relay.audit.collector.pullAll();
    await mapLimit(others, 3, async (user) => {
      const bridge = await layout.connectBridge(user);
      expect((await layout.fetchAs(user, '/api/tags')).status).toBe(200);
      await bridge.close();
    });
    await fullRound;

    await waitFor(
      async () => {
        const rows = await testDb.query<{ owner_hash: string }>(
          'SELECT DISTINCT owner_hash FROM tunnel_sessions WHERE connected_at IS NOT NULL AND disconnected_at IS NOT NULL',
        );
        return rows.length === others.length;
      },
      // A bound on a hang, not a speed: each round also waits out the frozen proxy's read timeout.
      90_000,
      `closed tunnel sessions of all ${others.length} other users`,
    );
    const recorded = new Set((await testDb.query<{ owner_hash: string }>('SELECT DISTINCT owner_hash FROM tunnel_sessions')).map((row) => row.owner_hash));
    expect(recorded).toEqual(new Set(others.map(userHash)));
    expect(await failures()).toBeGreaterThanOrEqual(1);
  }, 180_000);
});
