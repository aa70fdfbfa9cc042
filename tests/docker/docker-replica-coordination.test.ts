/**
 * What two api-backend replicas sharing one engine and one PostgreSQL must agree on, behind one
 * real nginx (docker driver): `PROXY_MAX` holds across both when users start at once through
 * either, a proxy that crashes is reported by exactly one of them, and a replica that drains closes
 * only the desktop tunnels it relays; the other replica's stay open.
 *
 * Needs Docker, PostgreSQL and nginx; each is required in CI (CTLL_REQUIRE_*), skipped otherwise.
 */
import fs from 'node:fs';
import pg from 'pg';
import { PROXY_SECRET_HEADER } from '@ctll/protocol';
import { containerName, LABELS, userHash } from '../../api-backend/src/proxy/naming';
import { managedFilter } from '../../api-backend/src/proxy/docker/spec';
import { waitFor } from '../helpers/layout';
import { BRIDGE_CLI, startBridgeCli, type BridgeProcess } from '../helpers/bridge-cli';
import { describeWithNginx } from '../helpers/nginx';
import { describeWithPostgres } from '../helpers/postgres';
import { startReplicas, type Replicas } from '../helpers/replicas';
import { describeDocker } from './require-docker';
import { docker } from './support';

jest.setTimeout(90_000);

const PROXY_MAX = 3;

describeDocker('two api-backend replicas coordinating through PostgreSQL (docker driver)', () => {
  describeWithPostgres('sharing one PostgreSQL', () => {
    describeWithNginx('behind one nginx', () => {
      let relay: Replicas;
      let db: pg.Pool;
      const bridges: BridgeProcess[] = [];
      const user = (name: string) => `${name}-${relay.scope}@example.com`;

      beforeAll(async () => {
        if (!fs.existsSync(BRIDGE_CLI)) throw new Error(`${BRIDGE_CLI} is missing: run npm run build`);
        relay = await startReplicas({ count: 2, env: { PROXY_MAX: String(PROXY_MAX), PROXY_START_TIMEOUT_MS: '45000', SHUTDOWN_GRACE_MS: '3000', LOG_LEVEL: 'debug' } });
        db = new pg.Pool({ connectionString: relay.db.url, max: 3 });
      }, 120_000);
      afterAll(async () => {
        await Promise.all(bridges.map((bridge) => bridge.stop()));
        await db?.end();
        await relay?.close();
      });

      const viaReplica = async (index: number, userId: string, method: string, pathname: string) => {
        const res = await fetch(`${relay.replicas[index].process.url}${pathname}`, { method, headers: { authorization: `Bearer ${relay.token(userId)}` } });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const proxyContainers = () => docker.listContainers({ all: true, filters: { label: managedFilter(relay.scope, 'proxy') } });
      const sumOverReplicas = async (name: string, labels: Record<string, string> = {}) =>
        (await Promise.all(relay.replicas.map((replica) => replica.metric(name, labels)))).reduce((a, b) => a + b, 0);
      /** The desktops the user's proxy holds, read from the proxy itself with the secret it was started with. */
      const desktopsAtProxy = async (userId: string) => {
        const info = await docker.getContainer(containerName(userHash(userId))).inspect();
        const secret = info.Config.Env.find((entry) => entry.startsWith('PROXY_SECRET='))!.slice('PROXY_SECRET='.length);
        const address = Object.values(info.NetworkSettings.Networks)[0].IPAddress;
        const res = await fetch(`http://${address}:8080/status`, { headers: { [PROXY_SECRET_HEADER]: secret } });
        return ((await res.json()) as { desktops: Array<{ id: string; transport: string }> }).desktops.filter((d) => d.transport === 'ws').map((d) => d.id);
      };
      const tunnelRows = async (userId: string) =>
        (
          await db.query<{ link_id: string; disconnected_at: Date | null; close_reason: string | null }>(
            'SELECT link_id, disconnected_at, close_reason FROM tunnel_sessions WHERE owner_hash = $1 ORDER BY connected_at',
            [userHash(userId)],
          )
        ).rows;

      it('holds PROXY_MAX across both replicas: of 6 users starting at once through either, 3 get a proxy and 3 the 503 capacity error', async () => {
        const users = Array.from({ length: 6 }, (_, i) => user(`cap${i}`));
        const answers = await Promise.all(users.map((userId, i) => viaReplica(i % 2, userId, 'POST', '/api/proxy/start')));
        const started = users.filter((_, i) => answers[i].status === 201);
        const outcome = (answer: { status: number; body: Record<string, unknown> }) => `${answer.status} ${(answer.body.error as { code?: string } | undefined)?.code ?? answer.body.status}`;
        expect(answers.map(outcome).sort()).toEqual(['201 running', '201 running', '201 running', '503 capacity', '503 capacity', '503 capacity']);
        for (const answer of answers.filter((a) => a.status === 503)) {
          expect(answer.body).toEqual({ error: { code: 'capacity', message: expect.stringContaining(`at capacity (${PROXY_MAX} proxies)`) } });
        }
        expect((await proxyContainers()).map((c) => c.Labels[LABELS.owner]).sort()).toEqual(started.map(userHash).sort());

        // Places come back as proxies stop: a refused user starts once one has gone.
        const refused = users.find((_, i) => answers[i].status === 503)!;
        expect((await viaReplica(1, started[0], 'POST', '/api/proxy/stop')).status).toBe(200);
        expect((await viaReplica(0, refused, 'POST', '/api/proxy/start')).status).toBe(201);
        for (const userId of [...started.slice(1), refused]) expect((await viaReplica(0, userId, 'POST', '/api/proxy/stop')).status).toBe(200);
        await waitFor(async () => (await proxyContainers()).length === 0, 30_000, 'every proxy to be removed');
      });

      it('reports a crashed proxy once, on one replica: one error line, one crash counted, one audit row', async () => {
        const fay = user('fay');
        const owner = userHash(fay);
        const crashesBefore = await sumOverReplicas('ctll_proxy_stops_total', { reason: 'error' });
        expect((await viaReplica(0, fay, 'POST', '/api/proxy/start')).body).toMatchObject({ status: 'running', created: true });
        await docker.getContainer(containerName(owner)).kill();

        // Each replica hears of the death: it reports it, or says another replica already did.
        const reported = (index: number) => relay.replicas[index].process.output().split('\n').some((line) => line.includes(owner) && line.includes('exited unexpectedly'));
        const deferred = (index: number) =>
          relay.replicas[index].process.output().split('\n').some((line) => line.includes(owner) && line.includes('already reported by another replica'));
        await waitFor(() => [0, 1].every((index) => reported(index) || deferred(index)), 30_000, 'both replicas to handle the crash');
        expect([0, 1].filter(reported)).toHaveLength(1);
        expect([0, 1].filter(deferred)).toHaveLength(1);
        expect(await sumOverReplicas('ctll_proxy_stops_total', { reason: 'error' })).toBe(crashesBefore + 1);
        await waitFor(
          async () => (await db.query("SELECT 1 FROM proxy_sessions WHERE owner_hash = $1 AND stop_reason = 'error'", [owner])).rowCount === 1,
          20_000,
          'the crash to reach the audit',
        );
        const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM proxy_exit_reports WHERE owner_hash = $1', [owner]);
        expect(rows[0].n).toBe(1);
        await waitFor(async () => (await proxyContainers()).length === 0, 30_000, 'the dead proxy to be removed');
      });

      it('closes, when one replica drains, only the tunnels it relays: bridges through the other replica keep the same open tunnel', async () => {
        const users = ['gus', 'hal', 'ida'].map(user);
        // One at a time: nginx (one worker, round robin) hands the upgrades to the replicas in turn.
        const carriers = new Map<string, number>();
        for (const userId of users) {
          const before = await Promise.all(relay.replicas.map((replica) => replica.metric('ctll_tunnels_open')));
          bridges.push(startBridgeCli(relay.nginx, relay.token(userId), relay.llm.url));
          await waitFor(async () => (await desktopsAtProxy(userId).catch(() => [])).length === 1, 30_000, `${userId}'s bridge to connect`);
          const after = await Promise.all(relay.replicas.map((replica) => replica.metric('ctll_tunnels_open')));
          carriers.set(userId, after.findIndex((open, i) => open > before[i]));
        }
        const drained = 0;
        const onDrained = users.filter((userId) => carriers.get(userId) === drained);
        const onOther = users.filter((userId) => carriers.get(userId) === 1 - drained);
        // Both replicas relay some tunnels, else there would be nothing to tell apart.
        expect(onDrained.length).toBeGreaterThan(0);
        expect(onOther.length).toBeGreaterThan(0);
        const linksBefore = new Map(await Promise.all(users.map(async (userId) => [userId, await desktopsAtProxy(userId)] as const)));
        await waitFor(async () => (await Promise.all(users.map(tunnelRows))).every((rows) => rows.length === 1), 20_000, 'the tunnels to reach the audit');

        expect(await relay.replicas[drained].stop()).toBe(0);
        // The drained replica's bridges were told "relay restarting" and came back through nginx to the other replica.
        await waitFor(async () => (await relay.replicas[1 - drained].metric('ctll_tunnels_open')) === users.length, 30_000, 'the tunnels to reopen on the other replica');
        for (const userId of onDrained) {
          const links = await desktopsAtProxy(userId);
          expect(links).toHaveLength(1);
          expect(links).not.toEqual(linksBefore.get(userId));
        }
        await waitFor(async () => (await Promise.all(onDrained.map(tunnelRows))).every((rows) => rows.length === 2), 20_000, 'the reconnects to reach the audit');
        for (const userId of onDrained) expect((await tunnelRows(userId))[0]).toMatchObject({ close_reason: '1012 relay restarting' });

        // The other replica's tunnels were never touched: the same link, one audit row, still open.
        for (const userId of onOther) {
          expect(await desktopsAtProxy(userId)).toEqual(linksBefore.get(userId));
          expect(await tunnelRows(userId)).toEqual([expect.objectContaining({ link_id: linksBefore.get(userId)![0], disconnected_at: null })]);
        }
      });
    });
  });
});
