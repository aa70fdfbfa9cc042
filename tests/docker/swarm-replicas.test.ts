/**
 * Two api-backend replicas behind one real nginx, sharing one PostgreSQL database and one swarm
 * manager (PROXY_DRIVER=swarm, one PROXY_SCOPE): concurrent starts for one user spread over both
 * make one proxy service on one overlay, and the replica that did not make it stops it, leaving
 * nothing of it on the engine. The replicas run on the host, so the driver is in host mode
 * (tasks reached at their docker_gwbridge leg), which needs PROXY_EGRESS=internet.
 *
 * Needs a swarm manager, PostgreSQL and nginx; each is required in CI (CTLL_REQUIRE_*), skipped otherwise.
 */
import { containerName, LABELS, networkName, userHash } from '../../api-backend/src/proxy/naming';
import { describeWithNginx } from '../helpers/nginx';
import { describeWithPostgres } from '../helpers/postgres';
import { startReplicas, type Replicas } from '../helpers/replicas';
import { describeSwarm } from './require-swarm';
import { docker } from './support';

// A bound on a hang: a swarm task on a busy two-core machine takes a while to be scheduled and started.
jest.setTimeout(90_000);

describeSwarm('several api-backend replicas (swarm driver)', () => {
  describeWithPostgres('sharing one PostgreSQL', () => {
    describeWithNginx('behind one nginx', () => {
      let relay: Replicas;
      const user = (name: string) => `${name}-${relay.scope}@example.com`;

      beforeAll(async () => {
        relay = await startReplicas({
          count: 2,
          env: { PROXY_DRIVER: 'swarm', PROXY_NETWORK_MODE: 'host', PROXY_EGRESS: 'internet', PROXY_START_TIMEOUT_MS: '60000', SHUTDOWN_GRACE_MS: '3000' },
        });
      }, 120_000);
      afterAll(async () => {
        await relay?.close();
      });

      /** The owner's proxy services and overlays of this relay's scope, as the engine lists them. */
      const onEngine = async (ownerHash: string) => {
        const filters = { label: [`${LABELS.scope}=${relay.scope}`, `${LABELS.owner}=${ownerHash}`] };
        const [services, networks] = await Promise.all([docker.listServices({ filters }), docker.listNetworks({ filters })]);
        return { services: services.map((s) => s.Spec?.Name), networks: networks.map((n) => [n.Name, n.Driver]) };
      };
      /** Which replica made a proxy: each counts the creates it did. */
      const createsPerReplica = () => Promise.all(relay.replicas.map((replica) => replica.metric('ctll_proxy_start_seconds_count', { driver: 'swarm' })));
      const ana = () => user('ana');

      it('makes exactly one service on one overlay for 20 concurrent starts of one user spread over both replicas', async () => {
        const owner = userHash(ana());
        const answers = await Promise.all(Array.from({ length: 20 }, () => relay.viaNginx(ana(), '/api/proxy/start', { method: 'POST', timeoutMs: 80_000 })));
        expect(answers.map((answer) => [answer.status, answer.json<{ status: string }>().status]).sort()).toEqual([...Array(19).fill([200, 'running']), [201, 'running']]);
        expect(answers.filter((answer) => answer.json<{ created: boolean }>().created)).toHaveLength(1);
        // nginx did spread them: both replicas answered some.
        const counts = await Promise.all(relay.replicas.map((replica) => replica.metric('ctll_http_requests_total', { route: '/api/proxy/start' })));
        expect(counts.every((count) => count > 0)).toBe(true);
        expect(counts[0] + counts[1]).toBe(20);
        expect((await createsPerReplica()).sort()).toEqual([0, 1]);

        expect(await onEngine(owner)).toEqual({ services: [containerName(owner)], networks: [[networkName(owner), 'overlay']] });
        // Either replica reports the same proxy.
        for (const index of [0, 1]) {
          expect((await relay.viaReplica(index, ana(), 'GET', '/api/proxy/status')).body).toMatchObject({ status: 'running', driver: 'swarm', owner });
        }
      });

      it('stops the proxy through the replica that did not make it, leaving no service and no overlay of the user', async () => {
        const owner = userHash(ana());
        const other = (await createsPerReplica()).indexOf(0);
        expect(other).not.toBe(-1);
        const stopped = await relay.viaReplica(other, ana(), 'POST', '/api/proxy/stop');
        expect(stopped).toEqual({ status: 200, body: { status: 'stopped', stopped: true } });
        // The driver's remove waits for the task and the overlay: the answer means gone.
        expect(await onEngine(owner)).toEqual({ services: [], networks: [] });
        for (const index of [0, 1]) {
          expect((await relay.viaReplica(index, ana(), 'GET', '/api/proxy/status')).body).toMatchObject({ status: 'not-found', driver: 'swarm' });
        }
      });
    });
  });
});
