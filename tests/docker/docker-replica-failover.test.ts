/**
 * One of two api-backend replicas killed with SIGKILL while twenty users stream through nginx
 * (docker driver, one PostgreSQL): the scenario and what it checks are tests/helpers/replica-kill.ts;
 * here a proxy is a container on a bridge network of its own.
 *
 * Runs alone in CI, after the main run (.ci/run): twenty containers and bridges on two cores.
 */
import { LABELS } from '../../api-backend/src/proxy/naming';
import { replicaKillSuite } from '../helpers/replica-kill';
import { describeDocker } from './require-docker';
import { docker } from './support';

jest.setTimeout(300_000);

describeDocker('an api-backend replica killed under load (docker driver)', () => {
  replicaKillSuite({
    env: { PROXY_START_TIMEOUT_MS: '60000' },
    async engineRecord(scope) {
      const filters = { label: [`${LABELS.scope}=${scope}`] };
      const [containers, networks] = await Promise.all([docker.listContainers({ all: true, filters }), docker.listNetworks({ filters })]);
      return { proxies: containers.map((c) => c.Id).sort(), networks: networks.length, notRunning: containers.filter((c) => c.State !== 'running').length };
    },
  });
});
