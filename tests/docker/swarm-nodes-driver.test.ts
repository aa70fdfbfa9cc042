/**
 * The swarm driver across two nodes, as a stack replica on one node meets its users' proxies on
 * another. The driver runs inside a swarm task on node 1 (swarm-container-mode.entry.ts, the same
 * run swarm-task-mode.test.ts makes on one node), PROXY_PLACEMENT puts the proxies on node 2, and
 * the driver reaches them through node 1's anchor (api-backend/src/proxy/swarm-anchor.ts): without
 * it the engine refuses the replica the overlay there (swarm-nodes.test.ts shows that rule). Each
 * proxy reaches only itself, and removing both leaves no service or overlay on either node, and
 * the anchor on its own network alone.
 *
 * Needs the two-node test swarm of scripts/ci/provision-swarm-nodes.sh (required in CI).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import Docker from 'dockerode';
import { LABELS, networkName } from '../../api-backend/src/proxy/naming';
import { anchorName, anchorNetworkName } from '../../api-backend/src/proxy/swarm-anchor';
import { PROXY_IMAGE } from './require-docker';
import { describeSwarmNodes, NODE_SOCKETS } from './require-swarm-nodes';
import { randomOwner, TEST_SCOPE } from './support';
import { bundleSwarmEntry, expectReachedAndApart, resultOf, runAsTask, SOCKET } from './swarm-entry';

// A bound on a hang: a task and two proxy services across two engines on a busy two-core machine.
jest.setTimeout(300_000);

const [node1, node2] = NODE_SOCKETS.map((socketPath) => new Docker({ socketPath }));
/** Where the replica task finds node 2's engine (to look inside the proxies' tasks). */
const NODE2_IN_TASK = '/run/ctll-node2.sock';
const ON_NODE2 = 'node.labels.ctll-node==2';

async function nodeIdOf(engine: Docker): Promise<string> {
  return ((await engine.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID;
}

/** Which nodes still list a network of this name after up to 30 s (the manager's removal reaches node 2 later). */
async function stillListing(name: string): Promise<string[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const where: string[] = [];
    for (const [index, engine] of [node1, node2].entries()) {
      if ((await engine.listNetworks({ filters: { name: [name] } })).some((one) => one.Name === name)) where.push(`node ${index + 1}`);
    }
    if (where.length === 0 || Date.now() > deadline) return where;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describeSwarmNodes("the swarm driver across two nodes: a replica task on node 1, its users' proxies on node 2", () => {
  const owners = [randomOwner(), randomOwner()];
  const name = `ctll-test-nodes-replica-${randomBytes(3).toString('hex')}`;
  let bundleDir: string | undefined;

  afterAll(async () => {
    const quietly = (work: () => Promise<unknown>) => work().catch(() => undefined);
    await quietly(() => node1.getService(name).remove());
    const ours = await node1.listServices({ filters: { label: [`${LABELS.owner}`] } });
    for (const service of ours.filter((s) => owners.includes(s.Spec?.Labels?.[LABELS.owner] ?? ''))) await quietly(() => node1.getService(service.ID).remove());
    await quietly(() => node1.getContainer(anchorName(TEST_SCOPE)).remove({ force: true }));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    for (const network of [...owners.map(networkName), anchorNetworkName(TEST_SCOPE)]) await quietly(() => node1.getNetwork(network).remove());
    if (bundleDir) fs.rmSync(bundleDir, { recursive: true, force: true });
  });

  it("starts two users' proxies on node 2, reaches both from node 1 through the anchor, they cannot reach each other, and removing them leaves nothing", async () => {
    const [node1Id, node2Id] = await Promise.all([nodeIdOf(node1), nodeIdOf(node2)]);
    const bundle = await bundleSwarmEntry();
    bundleDir = bundle.dir;
    const { state, output } = await runAsTask(
      node1,
      name,
      [bundle.entry],
      [
        `CTLL_OWNERS=${owners.join(',')}`,
        `CTLL_SCOPE=${TEST_SCOPE}`,
        `PROXY_IMAGE=${PROXY_IMAGE}`,
        `PROXY_SUBNET_POOL=${process.env.PROXY_SUBNET_POOL ?? '10.200.0.0/16'}`,
        `CTLL_PLACEMENT=${ON_NODE2}`,
        `CTLL_TASK_ENGINE=${NODE2_IN_TASK}`,
      ],
      {
        mounts: [
          { source: NODE_SOCKETS[0], target: SOCKET },
          { source: NODE_SOCKETS[1], target: NODE2_IN_TASK },
        ],
        constraints: ['node.labels.ctll-node==1'],
      },
    );
    const result = resultOf(output);
    expect({ output, error: result.error }).toEqual({ output, error: undefined });
    expect(state).toBe('complete');

    expect(result.task).toBe(true);
    expect(result.states).toEqual(['running', 'running']);
    // Placed by PROXY_PLACEMENT alone, on the node the replica is not on.
    expect(result.constraints).toEqual([[ON_NODE2], [ON_NODE2]]);
    expect(result.nodes).toEqual([node2Id, node2Id]);
    expect(node1Id).not.toBe(node2Id);
    expectReachedAndApart(result);
    expect(result.joinedAfterRemove).toEqual([]);
    expect(result.anchor).toEqual([anchorNetworkName(TEST_SCOPE)]);

    // Nothing stranded on either node: no proxy service, and each overlay gone from both.
    const services = await node1.listServices({ filters: { label: [LABELS.owner] } });
    expect(services.filter((s) => owners.includes(s.Spec?.Labels?.[LABELS.owner] ?? ''))).toEqual([]);
    expect(await Promise.all(owners.map((owner) => stillListing(networkName(owner))))).toEqual([[], []]);
  });
});
