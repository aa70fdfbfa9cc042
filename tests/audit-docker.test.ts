/**
 * The session audit with PROXY_DRIVER=docker and a real PostgreSQL server: each user's proxy is a
 * container, and its tunnel journal is pulled across the user's network exactly as from a child
 * process. Chats over both transports and a stop by the user leave the same rows as with the
 * process driver (tests/audit.test.ts has the full set of cases); at shutdown, unlike child
 * processes, containers keep running for the next api-backend, so none is recorded as stopped.
 */
import { Ollama } from 'ollama';
import type { SessionView, TunnelSessionView } from '../api-backend/src/audit/sessions';
import { userHash } from '../api-backend/src/proxy/naming';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { TRANSPORTS } from './helpers/matrix';
import { AUDIT_TEST_ENV, createTestDatabase, describeWithPostgres, type TestDatabase } from './helpers/postgres';
import { describeDocker } from './docker/require-docker';
import { removeOwners, TEST_SCOPE } from './docker/support';

jest.setTimeout(60_000);

describeDocker('session audit with the docker driver', () => {
  describeWithPostgres('on PostgreSQL', () => {
    let testDb: TestDatabase;
    let layout: Layout;
    const user = (name: string) => `${name}-${TEST_SCOPE}`;
    const owners = new Set<string>();

    beforeAll(async () => {
      testDb = await createTestDatabase();
      layout = await startLayout({
        driver: 'docker',
        env: { ...AUDIT_TEST_ENV, DATABASE_URL: testDb.url, PROXY_SCOPE: TEST_SCOPE, PROXY_MEMORY_MB: '128' },
        llm: { tokenDelayMs: 5, tokens: 6 },
      });
    }, 120_000);
    afterAll(async () => {
      await layout?.close();
      await removeOwners(owners);
      await testDb?.drop();
    }, 60_000);

    const auth = (userId: string) => {
      owners.add(userHash(userId));
      return { authorization: `Bearer ${layout.token(userId)}` };
    };
    const sessionsOf = async (userId: string): Promise<SessionView[]> => {
      const res = await fetch(`${layout.relay.url}/api/audit/sessions?limit=100`, { headers: auth(userId) });
      return ((await res.json()) as { sessions: SessionView[] }).sessions;
    };

    it.each(TRANSPORTS)('records a streamed chat over %s through a container', async (transport) => {
      const alice = user(`chat-${transport}`);
      const bridge = await layout.connectBridge(alice, { transport });
      const ollama = new Ollama({ host: layout.tunnelUrl(alice), headers: auth(alice) });
      let text = '';
      for await (const part of await ollama.chat({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }], stream: true })) {
        text += part.message.content;
      }
      expect(text).toBe('tok0 tok1 tok2 tok3 tok4 tok5 ');
      await bridge.close();
      let tunnel: TunnelSessionView | undefined;
      await waitFor(
        async () => Boolean((tunnel = (await sessionsOf(alice)).find((s): s is TunnelSessionView => s.kind === 'tunnel' && s.endedAt !== null))),
        20_000,
        'the closed tunnel session',
      );
      expect(tunnel).toMatchObject({ transport, requests: 1 });
      expect(tunnel!.client).toMatch(/^ctll-bridge\//);
      expect(tunnel!.bytesToDesktop).toBeGreaterThan(0);
      expect(tunnel!.bytesFromDesktop).toBeGreaterThan(0);
      const proxies = await testDb.query<{ driver: string; proxy_id: string }>('SELECT driver, proxy_id FROM proxy_sessions WHERE owner_hash = $1', [userHash(alice)]);
      expect(proxies).toEqual([{ driver: 'docker', proxy_id: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    });

    it('records a stop by the user, and no stop for a proxy the shutdown leaves running', async () => {
      const stopper = user('stopper');
      const stayer = user('stayer');
      const stopperBridge = await layout.connectBridge(stopper);
      await layout.connectBridge(stayer);
      expect((await layout.fetchAs(stopper, '/api/tags')).status).toBe(200);
      expect((await layout.fetchAs(stayer, '/api/tags')).status).toBe(200);
      const stop = await fetch(`${layout.relay.url}/api/proxy/stop`, { method: 'POST', headers: auth(stopper) });
      expect(await stop.json()).toMatchObject({ stopped: true });
      await stopperBridge.close();
      await waitFor(async () => (await sessionsOf(stayer)).some((s) => s.kind === 'tunnel'), 10_000, 'the stayer’s tunnel session');

      await layout.relay.close();
      expect(layout.relay.audit.writer.status()).toMatchObject({ queued: 0, dropped: 0 });
      const reasons = async (who: string) =>
        (await testDb.query<{ stop_reason: string }>('SELECT stop_reason FROM proxy_sessions WHERE owner_hash = $1 ORDER BY started_at', [userHash(who)])).map(
          (row) => row.stop_reason,
        );
      // The stopper's bridge may have dialled in again before it closed, making a second proxy.
      expect((await reasons(stopper))[0]).toBe('user');
      // The stayer's container still runs (the next start adopts it): its row stays open.
      expect(await reasons(stayer)).toEqual([null]);
      const tunnels = await testDb.query<{ close_reason: string | null }>('SELECT close_reason FROM tunnel_sessions WHERE owner_hash = $1', [userHash(stayer)]);
      expect(tunnels.map((row) => row.close_reason)).not.toContain('proxy stopped (shutdown)');
      expect(await testDb.query("SELECT count(*)::int AS n FROM proxy_sessions WHERE stop_reason = 'shutdown'")).toEqual([{ n: 0 }]);
    });
  });
});
