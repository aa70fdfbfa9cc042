/**
 * A stop that another node's replica outlasts, on the two-node test swarm: two api-backend
 * replicas run as swarm tasks, one on each node (both managers, as stack replicas run on managers).
 * The replica on node 1 starts a user's proxy; the replica on node 2 looks it up, which joins the
 * user's overlay through node 2's anchor, and reaches it; then node 1's replica stops the proxy.
 * That stop cannot remove the overlay, which node 2's replica and anchor hold, and leaves it after
 * its grace (swarm-driver.ts removeNetwork). Node 2's next sweep finds the overlay without a proxy,
 * takes its replica off, then its anchor, and removes it: nothing is left on either node, and each
 * anchor is on its own network alone.
 *
 * The replicas are swarm-sweep.entry.ts, one task each. Needs the two-node test swarm of
 * scripts/ci/provision-swarm-nodes.sh (required in CI).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { LABELS, networkName } from '../../api-backend/src/proxy/naming';
import { anchorName, anchorNetworkName } from '../../api-backend/src/proxy/swarm-anchor';
import { PROXY_IMAGE } from './require-docker';
import { describeSwarmNodes, NODE_SOCKETS } from './require-swarm-nodes';
import { randomOwner, TEST_SCOPE } from './support';
import { bundleSwarmEntry, resultOf, runAsTasks, SOCKET } from './swarm-entry';

// A bound on a hang: two replica tasks and a proxy service across two engines on a busy two-core machine.
jest.setTimeout(300_000);

const nodes = NODE_SOCKETS.map((socketPath) => new Docker({ socketPath }));
const [node1] = nodes;
/** Where the signal directory is in each replica task. */
const SIGNALS = '/run/ctll-signals';

/** Which nodes still list a network of this name after up to 30 s (a removal reaches the other node later). */
async function stillListing(name: string): Promise<string[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const where: string[] = [];
    for (const [index, engine] of nodes.entries()) {
      if ((await engine.listNetworks({ filters: { name: [name] } })).some((one) => one.Name === name)) where.push(`node ${index + 1}`);
    }
    if (where.length === 0 || Date.now() > deadline) return where;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describeSwarmNodes('a stop that leaves an overlay held on another node, and that node’s sweep', () => {
  const owner = randomOwner();
  const name = `ctll-test-sweep-replicas-${randomBytes(3).toString('hex')}`;
  let bundleDir: string | undefined;
  let signals: string | undefined;

  afterAll(async () => {
    const quietly = (work: () => Promise<unknown>) => work().catch(() => undefined);
    await quietly(() => node1.getService(name).remove());
    const ours = await node1.listServices({ filters: { label: [LABELS.owner] } });
    for (const service of ours.filter((s) => s.Spec?.Labels?.[LABELS.owner] === owner)) await quietly(() => node1.getService(service.ID).remove());
    for (const engine of nodes) await quietly(() => engine.getContainer(anchorName(TEST_SCOPE)).remove({ force: true }));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    for (const engine of nodes) {
      for (const network of [networkName(owner), anchorNetworkName(TEST_SCOPE)]) await quietly(() => engine.getNetwork(network).remove());
    }
    if (bundleDir) fs.rmSync(bundleDir, { recursive: true, force: true });
    if (signals) fs.rmSync(signals, { recursive: true, force: true });
  });

  it("leaves the overlay to node 2's replica, whose sweep takes itself and its anchor off and removes it", async () => {
    const bundle = await bundleSwarmEntry('swarm-sweep.entry.ts');
    bundleDir = bundle.dir;
    signals = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-sweep-'));
    const env = [
      `CTLL_OWNER=${owner}`,
      `CTLL_SCOPE=${TEST_SCOPE}`,
      `CTLL_SIGNALS=${SIGNALS}`,
      `PROXY_IMAGE=${PROXY_IMAGE}`,
      `PROXY_SUBNET_POOL=${process.env.PROXY_SUBNET_POOL ?? '10.200.0.0/16'}`,
    ];
    const nodeIds = await Promise.all(nodes.map(async (engine) => ((await engine.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID));
    const node1Id = nodeIds[0];
    // Each task gets its own node's engine: a link per node id, which the engine's template in the
    // mount's source picks (a bind mount follows the link).
    fs.mkdirSync(path.join(signals, 'engines'));
    nodeIds.forEach((id, index) => fs.symlinkSync(NODE_SOCKETS[index], path.join(signals!, 'engines', `${id}.sock`)));
    // One replicated service, at most one task per node, as a stack spreads api-backend's replicas.
    // The proxy runs on node 1, beside the replica that starts it: on node 2 only the joiner and its anchor hold the overlay.
    const runs = await runAsTasks(node1, name, [bundle.entry], [...env, `CTLL_STARTER_NODE=${node1Id}`, 'CTLL_PLACEMENT=node.labels.ctll-node==1'], {
      mounts: [
        { source: path.join(signals, 'engines', '{{.Node.ID}}.sock'), target: SOCKET },
        { source: signals, target: SIGNALS },
      ],
      replicas: 2,
    });
    const outputs = runs.map((run) => run.output);
    const results = runs.map((run) => resultOf(run.output));
    expect({ outputs, errors: results.map((result) => result.error) }).toEqual({ outputs, errors: [undefined, undefined] });
    expect(runs.map((run) => run.state)).toEqual(['complete', 'complete']);
    const starter = results.find((result) => result.role === 'starter')!;
    const joiner = results.find((result) => result.role === 'joiner')!;
    expect([starter, joiner].map((result) => result?.role)).toEqual(['starter', 'joiner']);

    const net = networkName(owner);
    const alone = [anchorNetworkName(TEST_SCOPE)];
    // Node 2's replica reached the proxy node 1's replica started, over the overlay it joined with its anchor.
    expect(starter.state).toBe('running');
    expect(joiner.state).toBe('running');
    expect(joiner.health).toBe(200);
    expect(joiner.joined).toEqual({ replica: [net], anchor: expect.arrayContaining([net]) as unknown });
    // The stop took node 1's replica and anchor off and left the overlay, held on node 2.
    expect(starter.afterStop).toEqual({ replica: [], anchor: alone });
    expect(starter.heldAfterStop).toBe(true);
    expect(joiner.overlayBeforeSweep).toBe(true);
    // Node 2's sweep took its replica and anchor off and removed the overlay.
    expect(joiner.afterSweep).toEqual({ replica: [], anchor: alone });
    expect(joiner.overlayAfterSweep).toBe(false);

    const services = await node1.listServices({ filters: { label: [LABELS.owner] } });
    expect(services.filter((s) => s.Spec?.Labels?.[LABELS.owner] === owner)).toEqual([]);
    expect(await stillListing(net)).toEqual([]);
  });
});
