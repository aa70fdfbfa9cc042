/**
 * Two api-backend replicas behind one real nginx, sharing one PostgreSQL database and one Docker
 * engine (PROXY_DRIVER=docker, one PROXY_SCOPE): any replica serves any user. Concurrent starts
 * for one user spread over both make one container, a zrok share registered through one replica is
 * known to the other, a proxy one replica stops is no crash to the other (and a crash is counted
 * once), and stopping one replica
 * leaves the proxies running for the other.
 *
 * Needs Docker, PostgreSQL and nginx; each is required in CI (CTLL_REQUIRE_*), skipped otherwise.
 */
import fs from 'node:fs';
import { containerName, LABELS, userHash } from '../../api-backend/src/proxy/naming';
import { waitFor } from '../helpers/layout';
import { BRIDGE_CLI, startBridgeCli, type BridgeProcess } from '../helpers/bridge-cli';
import { describeWithNginx } from '../helpers/nginx';
import { describeWithPostgres } from '../helpers/postgres';
import { startReplicas, type Replicas } from '../helpers/replicas';
import { describeDocker } from './require-docker';
import { docker } from './support';

jest.setTimeout(90_000);

describeDocker('several api-backend replicas (docker driver)', () => {
  describeWithPostgres('sharing one PostgreSQL', () => {
    describeWithNginx('behind one nginx', () => {
      let relay: Replicas;
      const bridges: BridgeProcess[] = [];
      const user = (name: string) => `${name}-${relay.scope}@example.com`;

      beforeAll(async () => {
        if (!fs.existsSync(BRIDGE_CLI)) throw new Error(`${BRIDGE_CLI} is missing: run npm run build`);
        relay = await startReplicas({ count: 2, env: { ZROK_ALLOW_INSECURE: 'true', ZROK_SHARE_DOMAINS: '127.0.0.1', SHUTDOWN_GRACE_MS: '3000', LOG_LEVEL: 'debug' } });
      }, 120_000);
      afterAll(async () => {
        await Promise.all(bridges.map((bridge) => bridge.stop()));
        await relay?.close();
      });

      const containersOf = async (ownerHash: string) =>
        docker.listContainers({ all: true, filters: { label: [`${LABELS.scope}=${relay.scope}`, `${LABELS.owner}=${ownerHash}`] } });
      const startCounts = () => Promise.all(relay.replicas.map((replica) => replica.metric('ctll_http_requests_total', { route: '/api/proxy/start' })));

      it('makes exactly one container for 20 concurrent starts of one user spread over both replicas', async () => {
        const ana = user('ana');
        const answers = await Promise.all(Array.from({ length: 20 }, () => relay.viaNginx(ana, '/api/proxy/start', { method: 'POST', timeoutMs: 60_000 })));
        expect(answers.map((answer) => answer.status).sort()).toEqual([...Array<number>(19).fill(200), 201]);
        expect(answers.map((answer) => answer.json<{ status: string }>().status)).toEqual(Array(20).fill('running'));
        expect(answers.filter((answer) => answer.json<{ created: boolean }>().created)).toHaveLength(1);
        // nginx did spread them: both replicas answered some.
        const counts = await startCounts();
        expect(counts.every((count) => count > 0)).toBe(true);
        expect(counts[0] + counts[1]).toBe(20);
        const containers = await containersOf(userHash(ana));
        expect(containers.map((c) => [c.Names[0], c.State])).toEqual([[`/${containerName(userHash(ana))}`, 'running']]);
        // Either replica reports the same proxy.
        for (const index of [0, 1]) expect((await relay.viaReplica(index, ana, 'GET', '/api/proxy/status')).body).toMatchObject({ status: 'running', driver: 'docker' });
      });

      it('discovers through one replica the zrok share registered through the other, for the user and for the proxy', async () => {
        const ben = user('ben');
        const publicUrl = relay.llm.url;
        const registered = await relay.viaReplica(0, ben, 'POST', '/api/zrok/register', { tunnelInfo: { publicUrl, shareToken: 'tok-ben' } });
        expect(registered).toMatchObject({ status: 201 });
        const tunnelId = registered.body.tunnelId as string;
        const listed = await relay.viaReplica(1, ben, 'GET', '/api/zrok/discover');
        expect(listed.body.tunnels).toEqual([expect.objectContaining({ tunnelId, publicUrl, shareToken: 'tok-ben' })]);
        // The user's proxy asks whichever replica it reaches, with the secret it was started with.
        const env = (await docker.getContainer(containerName(userHash(ben))).inspect()).Config.Env;
        const secret = env.find((entry) => entry.startsWith('PROXY_SECRET='))!.slice('PROXY_SECRET='.length);
        const proxyView = await fetch(`${relay.replicas[1].process.url}/api/zrok/discover/${userHash(ben)}`, { headers: { 'x-ctll-proxy-secret': secret } });
        expect(proxyView.status).toBe(200);
        expect(((await proxyView.json()) as { tunnels: unknown[] }).tunnels).toEqual([expect.objectContaining({ tunnelId, publicUrl })]);
        // A heartbeat through the other replica keeps it; an unregister there removes it for both.
        expect((await relay.viaReplica(1, ben, 'POST', '/api/zrok/heartbeat', { tunnelId })).status).toBe(200);
        expect((await relay.viaReplica(1, ben, 'DELETE', `/api/zrok/unregister?tunnelId=${tunnelId}`)).status).toBe(200);
        expect((await relay.viaReplica(0, ben, 'GET', '/api/zrok/discover')).body.tunnels).toEqual([]);
      });

      it('does not count a proxy one replica stopped for its user as a crash on the other replica', async () => {
        const dee = user('dee');
        const eve = user('eve');
        // One replica reports a crash (whichever claims it first), so the count is over both.
        const crashesSeen = async () => (await Promise.all(relay.replicas.map((replica) => replica.metric('ctll_proxy_stops_total', { reason: 'error' })))).reduce((a, b) => a + b, 0);
        const before = await crashesSeen();
        expect((await relay.viaReplica(0, dee, 'POST', '/api/proxy/start')).body).toMatchObject({ status: 'running', created: true });
        expect((await relay.viaReplica(0, dee, 'POST', '/api/proxy/stop')).body).toMatchObject({ status: 'stopped' });
        await waitFor(async () => (await containersOf(userHash(dee))).length === 0, 30_000, "dee's container to be removed");

        // A real crash afterwards: the engine's events come in order, so once the other replica has
        // handled this one (reported it, or found it claimed) it has long handled dee's stop, and
        // had it counted that, this would be two.
        expect((await relay.viaReplica(0, eve, 'POST', '/api/proxy/start')).body).toMatchObject({ status: 'running' });
        await docker.getContainer(containerName(userHash(eve))).kill();
        const handledByOther = () =>
          relay.replicas[1].process
            .output()
            .split('\n')
            .some((line) => line.includes(userHash(eve)) && /exited unexpectedly|already reported by another replica/.test(line));
        await waitFor(async () => handledByOther() && (await crashesSeen()) > before, 30_000, "the other replica to handle eve's crash");
        expect(await crashesSeen()).toBe(before + 1);
      });

      it('keeps the proxies running when one replica stops, and the other serves the user', async () => {
        const cy = user('cy');
        bridges.push(startBridgeCli(relay.nginx, relay.token(cy), relay.llm.url));
        const tunnelHealth = async () => (await relay.viaNginx(cy, `/api/tunnel/${encodeURIComponent(cy)}/health`)).json<{ connected?: boolean }>().connected === true;
        await waitFor(tunnelHealth, 30_000, 'the bridge to connect through nginx');
        const before = (await containersOf(userHash(cy))).map((c) => c.Id);
        expect(before).toHaveLength(1);

        // The replica the tunnel runs through is the one that stops.
        const tunnelsOpen = await Promise.all(relay.replicas.map((replica) => replica.metric('ctll_tunnels_open')));
        const carrier = tunnelsOpen.indexOf(1);
        expect(tunnelsOpen.sort()).toEqual([0, 1]);
        expect(await relay.replicas[carrier].stop()).toBe(0);
        // Still there, still running: the stopped replica left it for the other.
        expect((await docker.getContainer(containerName(userHash(cy))).inspect()).State.Running).toBe(true);
        // The bridge was told "relay restarting" and reconnects through nginx to the other replica.
        await waitFor(async () => (await relay.replicas[1 - carrier].metric('ctll_tunnels_open')) === 1, 30_000, 'the tunnel to reopen through the other replica');
        expect(await tunnelHealth()).toBe(true);
        for (let i = 0; i < 4; i++) {
          const tags = await relay.viaNginx(cy, `/api/tunnel/${encodeURIComponent(cy)}/api/tags`);
          expect(tags.status).toBe(200);
          expect(tags.json()).toHaveProperty('models');
        }
        const again = await relay.viaNginx(cy, '/api/proxy/start', { method: 'POST' });
        expect(again.json()).toMatchObject({ status: 'running', created: false });
        expect((await containersOf(userHash(cy))).map((c) => c.Id)).toEqual(before);

        // Started again, the replica adopts what runs instead of making anything new.
        await relay.replicas[carrier].start();
        expect((await relay.viaReplica(carrier, cy, 'POST', '/api/proxy/start')).body).toMatchObject({ status: 'running', created: false });
        expect((await containersOf(userHash(cy))).map((c) => c.Id)).toEqual(before);
      });
    });
  });
});
