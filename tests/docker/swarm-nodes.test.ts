/**
 * A user's overlay across two swarm nodes, on the two-node test swarm of
 * scripts/ci/provision-swarm-nodes.sh: an api-backend replica runs as a task on node 1 (the
 * manager), the user's proxy as a task on node 2. The engine lets a task join an attachable
 * overlay only on a node where the overlay is in use already; a plain container may join anywhere.
 * These tests show what that means across nodes, and that a plain "anchor" container on the
 * replica's node, joined first, makes the replica's own join work and the proxy reachable: an
 * anchor of the user's own, or one anchor for the node joined to every user's overlay.
 *
 * Bare programs stand in for api-backend and the proxy (a node HTTP server answering with its
 * container's hostname, which is its container id): what is under test is the engine, the joins
 * are made the way docker/networks.ts makes them (a connect of the replica's own task container,
 * asking for the overlay's last address), and the stop keeps the order swarm-driver.ts keeps.
 */
import { randomBytes, randomInt } from 'node:crypto';
import Docker from 'dockerode';
import { NODE_BASE_IMAGE } from './require-docker';
import { describeSwarmNodes, NODE_SOCKETS } from './require-swarm-nodes';

// A bound on a hang: each test starts a task or two on a busy two-core machine.
jest.setTimeout(120_000);

const [node1, node2] = NODE_SOCKETS.map((socketPath) => new Docker({ socketPath }));
const RUN = randomBytes(3).toString('hex');
const LABELS = { 'io.cloudtolocalllm.test': 'swarm-nodes' };
const PORT = 8080;
/** Both stand-ins answer every request with their own hostname (their container's short id). */
const ANSWERING = `require('http').createServer((q, r) => r.end('answer from ' + require('os').hostname())).listen(${PORT})`;
const IDLE = 'setInterval(() => {}, 1 << 30)';

interface Task {
  NodeID: string;
  Status: { State: string; Err?: string; ContainerStatus?: { ContainerID?: string } };
  NetworksAttachments?: { Network: { ID: string }; Addresses: string[] }[];
}

interface Overlay {
  id: string;
  name: string;
  /** The /24's first three octets. */
  prefix: string;
}

let imageId = '';
const services: string[] = [];
const containers: string[] = [];
const overlays: string[] = [];
/** Node 1's local networks (the node anchor's bridge). */
const locals: string[] = [];

async function nodeIdOf(engine: Docker): Promise<string> {
  return ((await engine.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID;
}

/** An attachable, internal overlay made through the manager, as overlaySpec makes a user's. */
async function createOverlay(name: string): Promise<Overlay> {
  const prefix = `10.233.${randomInt(1, 255)}`;
  const network = await node1.createNetwork({
    Name: name,
    Driver: 'overlay',
    CheckDuplicate: true,
    Attachable: true,
    Internal: true,
    IPAM: { Driver: 'default', Config: [{ Subnet: `${prefix}.0/24` }] },
    Labels: LABELS,
  });
  overlays.push(network.id);
  return { id: network.id, name, prefix };
}

/** A one-replica service (restart none) running `node -e <script>` on node <n>, by image id (never pulled). */
async function createService(name: string, node: 1 | 2, script: string, overlay?: Overlay): Promise<string> {
  const service = (await node1.createService({
    Name: name,
    Labels: LABELS,
    TaskTemplate: {
      ContainerSpec: { Image: imageId, Command: ['node', '-e', script], Labels: LABELS },
      Networks: overlay ? [{ Target: overlay.id }] : [],
      Placement: { Constraints: [`node.labels.ctll-node==${node}`] },
      RestartPolicy: { Condition: 'none' },
    },
    Mode: { Replicated: { Replicas: 1 } },
  } as unknown as Docker.CreateServiceOptions)) as unknown as { id?: string; ID?: string };
  const id = service.id ?? service.ID ?? '';
  services.push(id);
  return id;
}

/** The service's task once it runs, with its container id. */
async function runningTask(serviceId: string): Promise<Task & { containerId: string }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [task] = (await node1.listTasks({ filters: { service: [serviceId], 'desired-state': ['running'] } })) as Task[];
    const containerId = task?.Status.ContainerStatus?.ContainerID;
    if (task?.Status.State === 'running' && containerId) return { ...task, containerId };
    if (task && ['failed', 'rejected', 'complete', 'shutdown'].includes(task.Status.State)) {
      throw new Error(`task of ${serviceId} ${task.Status.State}: ${task.Status.Err ?? ''}`);
    }
    if (Date.now() > deadline) throw new Error(`task of ${serviceId} not running: ${JSON.stringify(task?.Status)}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** The task's address on the overlay, without the prefix length. */
function addressOn(task: Task, overlay: Overlay): string {
  const attachment = task.NetworksAttachments?.find((one) => one.Network.ID === overlay.id);
  const [address] = attachment?.Addresses ?? [];
  if (!address) throw new Error(`task has no address on ${overlay.name}: ${JSON.stringify(task.NetworksAttachments)}`);
  return address.split('/')[0];
}

/**
 * An HTTP GET from inside a container (no shell in the image: node), answered as the user would
 * see it: `answer from <hostname>`, or `no answer: <error code>` within 5 s.
 */
async function fetchFrom(engine: Docker, containerId: string, address: string): Promise<string> {
  const script = `fetch('http://${address}:${PORT}/', { signal: AbortSignal.timeout(5000) })
    .then((r) => r.text()).then((text) => console.log(text), (e) => console.log('no answer: ' + ((e.cause && e.cause.code) || e.name)))`;
  const exec = await engine.getContainer(containerId).exec({ Cmd: ['node', '-e', script], AttachStdout: true, AttachStderr: true, Tty: true });
  const stream = await exec.start({ hijack: true, stdin: false, Tty: true });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise((resolve) => stream.on('end', resolve));
  return Buffer.concat(chunks).toString('utf8').trim();
}

/**
 * The node learns where the overlay's other addresses live through the swarm's gossip, after the
 * join: the first request answered at once in our runs, but in the first minute after node 1's
 * engine had been restarted requests failed (EHOSTUNREACH, or no answer) for up to some 20 s. So a
 * request is tried again for up to 30 s, and the last result is returned.
 */
async function answerFrom(engine: Docker, containerId: string, address: string): Promise<string> {
  const started = Date.now();
  for (;;) {
    const result = await fetchFrom(engine, containerId, address);
    if (!result.startsWith('no answer') || Date.now() - started > 30_000) return result;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/**
 * An anchor: a plain container on node 1, doing nothing, hardened as a proxy is (no capabilities,
 * read-only, unprivileged), on one network only: a user's overlay, or (the node's one anchor for
 * every user, joined to each overlay with a connect) a local internal bridge, no way out.
 */
async function startAnchor(name: string, network: string): Promise<Docker.Container> {
  const anchor = await node1.createContainer({
    name,
    Image: imageId,
    Cmd: ['node', '-e', IDLE],
    User: '65534:65534',
    Labels: LABELS,
    HostConfig: {
      NetworkMode: network,
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      RestartPolicy: { Name: 'no' },
    },
    NetworkingConfig: { EndpointsConfig: { [network]: {} } },
  });
  containers.push(anchor.id);
  await anchor.start();
  return anchor;
}

/** A user's own anchor, on the user's overlay; it leaves by going. */
async function userAnchor(user: UserProxy): Promise<void> {
  const anchor = await startAnchor(`${user.overlay.name}-anchor`, user.overlay.name);
  user.anchorLeaves = () => anchor.remove({ force: true });
}

/** The node's anchor joined to the user's overlay; it leaves by a disconnect, staying for the others. */
async function nodeAnchorJoins(user: UserProxy, anchor: Docker.Container): Promise<void> {
  const network = node1.getNetwork(user.overlay.id);
  await network.connect({ Container: anchor.id });
  user.anchorLeaves = () => network.disconnect({ Container: anchor.id, Force: true });
}

/** Joins the replica's task container to the overlay at the overlay's last address, as docker/networks.ts attach does. */
async function joinReplica(overlay: Overlay, containerId: string): Promise<void> {
  await node1.getNetwork(overlay.id).connect({ Container: containerId, EndpointConfig: { IPAMConfig: { IPv4Address: `${overlay.prefix}.254` } } });
}

/** Which of the nodes (default: both) list a network of this name. */
async function listedOn(name: string, nodes: (1 | 2)[] = [1, 2]): Promise<string[]> {
  const where: string[] = [];
  for (const n of nodes) {
    const found = await (n === 1 ? node1 : node2).listNetworks({ filters: { name: [name] } });
    if (found.some((one) => one.Name === name)) where.push(`node ${n}`);
  }
  return where;
}

/**
 * Waits until none of these nodes lists the network, and returns those still listing it after
 * 30 s. The manager's removal reaches each node's own list later: node 1 within a second or two,
 * node 2 some ten seconds after.
 */
async function goneFrom(name: string, nodes: (1 | 2)[] = [1, 2]): Promise<string[]> {
  const deadline = Date.now() + 30_000;
  let where = await listedOn(name, nodes);
  while (where.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    where = await listedOn(name, nodes);
  }
  return where;
}

const quietly = async (work: () => Promise<unknown>): Promise<void> => {
  await work().catch(() => undefined);
};

describeSwarmNodes('a user overlay across two swarm nodes (replica task on node 1, proxy task on node 2)', () => {
  let node1Id = '';
  let node2Id = '';

  beforeAll(async () => {
    imageId = (await node1.getImage(NODE_BASE_IMAGE).inspect()).Id;
    [node1Id, node2Id] = await Promise.all([nodeIdOf(node1), nodeIdOf(node2)]);
  });

  afterAll(async () => {
    for (const id of containers) await quietly(() => node1.getContainer(id).remove({ force: true }));
    for (const id of services) await quietly(() => node1.getService(id).remove());
    // A network's removal waits for its tasks to be gone.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    for (const id of [...overlays, ...locals]) await quietly(() => node1.getNetwork(id).remove());
  });

  describe('one user, one proxy', () => {
    const name = `ctll-test-nodes-${RUN}`;
    let replica: Task & { containerId: string };
    let replicaService = '';
    let user: UserProxy;

    beforeAll(async () => {
      replicaService = await createService(`${name}-replica`, 1, ANSWERING);
      [user, replica] = await Promise.all([startUserProxy(name), runningTask(replicaService)]);
    });

    afterAll(async () => {
      await quietly(() => node1.getService(replicaService).remove());
    });

    it('runs the proxy on node 2 and the replica on node 1', () => {
      expect(user.proxy.NodeID).toBe(node2Id);
      expect(replica.NodeID).toBe(node1Id);
    });

    it('refuses the replica task the overlay of a proxy that runs only on node 2 ("network … not found"), and the proxy is out of its reach', async () => {
      await expect(joinReplica(user.overlay, replica.containerId)).rejects.toThrow(/network \S+ not found/);
      expect(await fetchFrom(node1, replica.containerId, user.address)).toMatch(/^no answer: /);
    });

    it('lets the replica task join once a plain anchor container on node 1 holds the overlay: it gets the proxy answer from node 2, and the proxy reaches it back', async () => {
      await userAnchor(user);
      await joinReplica(user.overlay, replica.containerId);
      await expectBothWays(user, replica);
    });

    it('frees the overlay on node 1 when the replica leaves first, then the anchor goes, then the proxy service and the overlay', async () => {
      await stopInOrder(user, replica);
      // Until node 1 has dropped it, creating the overlay again answers "already exists" (409).
      // Node 2 drops it later, which is checked at the end.
      expect(await goneFrom(name, [1])).toEqual([]);
    });

    it("serves the user's next start and a second user's proxy through one anchor for the node, joined to each overlay; one user's stop leaves the other served", async () => {
      const anchors = await node1.createNetwork({ Name: `${name}-anchors`, Driver: 'bridge', Internal: true, CheckDuplicate: true, Labels: LABELS });
      locals.push(anchors.id);
      const anchor = await startAnchor(`${name}-node-anchor`, `${name}-anchors`);
      let other: UserProxy;
      [user, other] = await Promise.all([startUserProxy(name), startUserProxy(`${name}-other`)]);
      expect([user.proxy.NodeID, other.proxy.NodeID]).toEqual([node2Id, node2Id]);
      for (const one of [user, other]) {
        await nodeAnchorJoins(one, anchor);
        await joinReplica(one.overlay, replica.containerId);
        await expectBothWays(one, replica);
      }

      await stopInOrder(user, replica);
      expect(await goneFrom(name, [1])).toEqual([]);
      expect(await answerFrom(node1, replica.containerId, other.address)).toBe(`answer from ${other.proxy.containerId.slice(0, 12)}`);
      await stopInOrder(other, replica);
      expect(await Promise.all([goneFrom(name), goneFrom(other.overlay.name)])).toEqual([[], []]);
    });
  });
});

interface UserProxy {
  overlay: Overlay;
  proxy: Task & { containerId: string };
  /** The proxy's address on its overlay. */
  address: string;
  /** Takes the anchor off the user's overlay on node 1. */
  anchorLeaves?: () => Promise<unknown>;
}

/** A user's overlay and proxy service, the proxy placed on node 2; resolves once it runs. */
async function startUserProxy(name: string): Promise<UserProxy> {
  const overlay = await createOverlay(name);
  const proxy = await runningTask(await createService(`${name}-proxy`, 2, ANSWERING, overlay));
  return { overlay, proxy, address: addressOn(proxy, overlay) };
}

/** The replica, joined at the address it asked for, gets the proxy's answer, and the proxy gets the replica's. */
async function expectBothWays(user: UserProxy, replica: Task & { containerId: string }): Promise<void> {
  const joined = await node1.getContainer(replica.containerId).inspect();
  expect(joined.NetworkSettings.Networks[user.overlay.name]?.IPAddress).toBe(`${user.overlay.prefix}.254`);
  expect(await answerFrom(node1, replica.containerId, user.address)).toBe(`answer from ${user.proxy.containerId.slice(0, 12)}`);
  expect(await answerFrom(node2, user.proxy.containerId, `${user.overlay.prefix}.254`)).toBe(`answer from ${replica.containerId.slice(0, 12)}`);
}

/**
 * A stop in the order that leaves nothing behind: the replica leaves while the anchor still holds
 * the overlay on node 1, then the anchor leaves, then the proxy service goes, then the overlay.
 * (With the anchor gone first, so that the replica's leave was the last on node 1, node 1 kept the
 * overlay for good in 7 of our 9 tries: listed, "not found" to every remove, its name taken.)
 */
async function stopInOrder(user: UserProxy, replica: Task & { containerId: string }): Promise<void> {
  await node1.getNetwork(user.overlay.id).disconnect({ Container: replica.containerId, Force: true });
  await user.anchorLeaves?.();
  const [service] = await node1.listServices({ filters: { name: [`${user.overlay.name}-proxy`] } });
  await node1.getService(service.ID).remove();
  await removeWhenTaskGone(user.overlay);
}

/** Removes the overlay once the manager lets it (its proxy task is still shutting down at first). */
async function removeWhenTaskGone(overlay: Overlay): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await node1.getNetwork(overlay.id).remove();
      return;
    } catch (error) {
      if (Date.now() > deadline || !/in use|active endpoints/i.test(String((error as Error).message))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}
