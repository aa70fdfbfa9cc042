/**
 * api-backend as a swarm task, as each replica of docker-stack.yml runs (PROXY_DRIVER=swarm,
 * PROXY_NETWORK_MODE=container). The engine lets a task join an attachable overlay only on a node
 * where that overlay is already in use: the first test shows that rule with a bare task, the second
 * runs the swarm driver inside a task (swarm-container-mode.entry.ts) and shows it starting two
 * users' proxies all the same: it creates each service (placed anywhere), connects its node's
 * anchor to the overlay once the proxy's task runs, joins, and on removal leaves before the anchor.
 * Across two nodes: swarm-nodes-driver.test.ts.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { containerName, LABELS, networkName } from '../../api-backend/src/proxy/naming';
import { PROXY_IMAGE } from './require-docker';
import { describeSwarm } from './require-swarm';
import { docker, randomOwner, TEST_SCOPE } from './support';
import { anchorName, anchorNetworkName } from '../../api-backend/src/proxy/swarm-anchor';
import { bundleSwarmEntry, expectReachedAndApart, resultOf, runAsTask, SOCKET } from './swarm-entry';

// A bound on a hang: two tasks and two proxy services on a busy two-core machine.
jest.setTimeout(240_000);

/** Asks the engine, from inside the task, to join the task's own container to a network; prints the answer. */
const JOIN_SCRIPT = `
const http = require('http');
const req = http.request({ socketPath: '${SOCKET}', method: 'POST', path: '/networks/' + process.env.NET + '/connect', headers: { 'content-type': 'application/json' } }, (res) => {
  let body = '';
  res.on('data', (chunk) => (body += chunk));
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, message: JSON.parse(body || '{}').message })));
});
req.end(JSON.stringify({ Container: require('os').hostname() }));`;

async function removeService(name: string): Promise<void> {
  await docker.getService(name).remove().catch(() => undefined);
}

/** Removes the network once the tasks that held it are gone. */
async function removeNetwork(name: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const gone = await docker.getNetwork(name).remove().then(
      () => true,
      (error: { statusCode?: number }) => error.statusCode === 404,
    );
    if (gone) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describeSwarm('api-backend as a swarm task (a stack replica)', () => {
  const suffix = randomBytes(4).toString('hex');

  describe('the engine rule', () => {
    const network = `ctll-test-overlay-${suffix}`;
    const name = `ctll-test-join-${suffix}`;
    afterAll(async () => {
      await removeService(name);
      await removeNetwork(network);
    });

    it('refuses a task that joins an attachable overlay no task on its node uses yet: "network not found"', async () => {
      await docker.createNetwork({ Name: network, Driver: 'overlay', Attachable: true, CheckDuplicate: true, Labels: { 'io.cloudtolocalllm.test': 'task-mode' } });
      const { state, output } = await runAsTask(docker, name, ['-e', JOIN_SCRIPT], [`NET=${network}`]);
      expect(state).toBe('complete');
      expect(resultOf(output)).toEqual({ status: 404, message: `network ${network} not found` });
    });
  });

  describe('the swarm driver inside a task', () => {
    const owners = [randomOwner(), randomOwner()];
    const name = `ctll-test-replica-${suffix}`;
    let bundleDir: string | undefined;

    afterAll(async () => {
      await removeService(name);
      await Promise.all(owners.map((owner) => removeService(containerName(owner))));
      for (const owner of owners) await removeNetwork(networkName(owner));
      await docker.getContainer(anchorName(TEST_SCOPE)).remove({ force: true }).catch(() => undefined);
      await removeNetwork(anchorNetworkName(TEST_SCOPE));
      if (bundleDir) fs.rmSync(bundleDir, { recursive: true, force: true });
    });

    it("starts two users' proxies on internal overlays, reaches both, and they cannot reach each other", async () => {
      const bundle = await bundleSwarmEntry();
      bundleDir = bundle.dir;
      const { state, output } = await runAsTask(docker, name, [bundle.entry], [
        `CTLL_OWNERS=${owners.join(',')}`,
        `CTLL_SCOPE=${TEST_SCOPE}`,
        `PROXY_IMAGE=${PROXY_IMAGE}`,
        `PROXY_SUBNET_POOL=${process.env.PROXY_SUBNET_POOL ?? '10.200.0.0/16'}`,
      ]);
      const result = resultOf(output);
      expect({ output, error: result.error }).toEqual({ output, error: undefined });
      expect(state).toBe('complete');

      expect(result.task).toBe(true); // it ran as a swarm task, where a join first would have failed
      expect(result.states).toEqual(['running', 'running']);
      expect(result.internal).toEqual([true, true]);
      expectReachedAndApart(result);
      // Not pinned: the node anchor lets a replica join on any node (swarm-nodes-driver.test.ts).
      expect(result.constraints).toEqual([[], []]);
      expect(result.joinedAfterRemove).toEqual([]);
      // The anchor joined each overlay before the replica did, and left after it: it is on its own network alone.
      expect(result.anchor).toEqual([anchorNetworkName(TEST_SCOPE)]);

      const filters = { label: [`${LABELS.managed}=true`] };
      const [services, networks] = await Promise.all([docker.listServices({ filters }), docker.listNetworks({ filters })]);
      expect(services.filter((s) => owners.includes(s.Spec?.Labels?.[LABELS.owner] ?? ''))).toEqual([]);
      expect(networks.filter((n) => owners.includes(n.Labels?.[LABELS.owner] ?? ''))).toEqual([]);
    });
  });
});
