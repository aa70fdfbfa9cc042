/**
 * One of two api-backend replicas killed with SIGKILL while twenty users stream through nginx, on
 * the swarm driver (PROXY_DRIVER=swarm on this machine's single-node swarm, one PostgreSQL): the
 * scenario and what it checks are tests/helpers/replica-kill.ts; here a proxy is a one-replica
 * service on an overlay of its own. The replicas run on the host, so the driver is in host mode
 * (tasks reached at their docker_gwbridge leg), which needs PROXY_EGRESS=internet.
 *
 * The twenty desktops connecting at once start twenty proxy services at once, split over the two
 * replicas, each of which starts two at a time (SWARM_STARTS_AT_ONCE) with the default
 * PROXY_START_TIMEOUT_MS running from each start's turn. Nothing is staggered and the timeout is
 * not raised: a desktop whose proxy is still queued retries within its backoff, as it would in
 * production. (A swarm task costs this node's dockerd some 3-4 CPU-seconds, so the twenty take
 * a minute or more of both cores whatever the driver does; README, "Growing from one host to a swarm".)
 *
 * Runs alone in CI, after the main run (.ci/run): twenty services, overlays and bridges on two cores.
 */
import { LABELS } from '../../api-backend/src/proxy/naming';
import { currentTask, phaseOf, type SwarmTask } from '../../api-backend/src/proxy/swarm-tasks';
import { replicaKillSuite } from '../helpers/replica-kill';
import { describeSwarm } from './require-swarm';
import { docker } from './support';

jest.setTimeout(300_000);

describeSwarm('an api-backend replica killed under load (swarm driver)', () => {
  replicaKillSuite({
    env: { PROXY_DRIVER: 'swarm', PROXY_NETWORK_MODE: 'host', PROXY_EGRESS: 'internet' },
    async engineRecord(scope) {
      const filters = { label: [`${LABELS.scope}=${scope}`] };
      const [services, networks] = await Promise.all([docker.listServices({ filters }), docker.listNetworks({ filters })]);
      const tasks = services.length > 0 ? ((await docker.listTasks({ filters: { service: services.map((s) => s.ID) } })) as SwarmTask[]) : [];
      const running = services.filter((s) => phaseOf(currentTask(tasks, s.ID)) === 'running');
      return { proxies: services.map((s) => s.ID).sort(), networks: networks.length, notRunning: services.length - running.length };
    },
  });
});
