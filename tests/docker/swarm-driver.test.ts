/**
 * PROXY_DRIVER=swarm on a real single-node swarm: a user's proxy is a hardened one-replica service
 * on its own attachable overlay, started, reported and removed like a docker proxy; and two
 * users' proxies cannot reach each other. The first suite runs the driver here on the host (it
 * reaches tasks on docker_gwbridge); the second runs it in a container joined to each user's
 * internal overlay, as production does (swarm-container-mode.entry.ts, bundled here).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type Docker from 'dockerode';
import { SwarmDriver, type SwarmDriverOptions } from '../../api-backend/src/proxy/swarm-driver';
import { LABELS, containerName, networkName } from '../../api-backend/src/proxy/naming';
import { NODE_BASE_IMAGE, PROXY_IMAGE } from './require-docker';
import { describeSwarm } from './require-swarm';
import { docker, health, logger, randomOwner, TEST_SCOPE, TEST_SECRETS, type Exit } from './support';
import { bundleSwarmEntry, REPO, resultOf } from './swarm-entry';

// A bound on a hang: a swarm task on a busy two-core machine takes a while to be scheduled and started.
jest.setTimeout(240_000);

function swarmDriver(overrides: Partial<SwarmDriverOptions> = {}): { driver: SwarmDriver; exits: Exit[] } {
  const exits: Exit[] = [];
  const driver = new SwarmDriver({
    image: PROXY_IMAGE,
    scope: TEST_SCOPE,
    memoryMb: 128,
    cpus: 0.5,
    subnetPool: process.env.PROXY_SUBNET_POOL ?? '10.200.0.0/16',
    startTimeoutMs: 90_000,
    secretFor: (ownerHash) => TEST_SECRETS.secretFor(ownerHash),
    env: (ownerHash, secret) => ({ NODE_ENV: 'production', HOST: '0.0.0.0', PROXY_SECRET: secret, PROXY_USER_HASH: ownerHash, LOG_LEVEL: 'warn' }),
    logger,
    onExit: (ownerHash, detail) => exits.push({ ownerHash, detail }),
    ...overrides,
  });
  return { driver, exits };
}

/** Services and networks (and task containers) these owners still have on the engine. */
async function leftovers(owners: string[]): Promise<{ services: string[]; networks: string[]; containers: string[] }> {
  const wanted = new Set(owners);
  const filters = { label: [`${LABELS.managed}=true`] };
  const [services, networks, containers] = await Promise.all([docker.listServices({ filters }), docker.listNetworks({ filters }), docker.listContainers({ all: true, filters })]);
  return {
    services: services.filter((s) => wanted.has(s.Spec?.Labels?.[LABELS.owner] ?? '')).map((s) => s.Spec!.Name!),
    networks: networks.filter((n) => wanted.has(n.Labels?.[LABELS.owner] ?? '')).map((n) => n.Name),
    containers: containers.filter((c) => wanted.has(c.Labels[LABELS.owner])).map((c) => c.Names[0]),
  };
}

/** Whatever a failed test left: services first (their tasks hold the overlays), then the networks. */
async function removeOwners(owners: string[]): Promise<void> {
  await Promise.all(owners.map((owner) => docker.getService(containerName(owner)).remove().catch(() => undefined)));
  const deadline = Date.now() + 20_000;
  for (const owner of owners) {
    while (Date.now() < deadline) {
      const gone = await docker.getNetwork(networkName(owner)).remove().then(
        () => true,
        (error: { statusCode?: number }) => error.statusCode === 404,
      );
      if (gone) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

async function waitGone(owners: string[], timeoutMs = 20_000): Promise<Awaited<ReturnType<typeof leftovers>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await leftovers(owners);
    if (left.services.length + left.networks.length + left.containers.length === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The one running task container of the owner's service (this node runs every task). */
async function taskContainer(owner: string): Promise<Docker.ContainerInspectInfo> {
  const [listed] = await docker.listContainers({ filters: { label: [`com.docker.swarm.service.name=${containerName(owner)}`], status: ['running'] } });
  if (!listed) throw new Error(`no running task container for ${containerName(owner)}`);
  return docker.getContainer(listed.Id).inspect();
}

/** Runs `node -e` inside a running container (no shell in our images) and returns its output. */
async function execIn(containerId: string, script: string): Promise<string> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: ['node', '-e', script], AttachStdout: true, AttachStderr: true, Tty: true });
  const stream = await exec.start({ hijack: true, stdin: false, Tty: true });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise((resolve) => stream.on('end', resolve));
  return Buffer.concat(chunks).toString('utf8').trim();
}

describeSwarm('swarm driver', () => {
  describe('api-backend on the host', () => {
    const owner = randomOwner();
    afterAll(() => removeOwners([owner]));

    it('starts a hardened one-replica service on its own overlay, reports it running, and removes both on stop', async () => {
      const { driver, exits } = swarmDriver({ networkMode: 'host' });
      try {
        await driver.start();
        expect(await driver.health()).toMatchObject({ ok: true });

        const handle = await driver.create(owner);
        expect(handle).toMatchObject({ ownerHash: owner, state: 'running' });
        expect(await health(handle.endpoint!.host, handle.endpoint!.port)).toBe(200);
        expect(await driver.inspect(owner)).toMatchObject({ state: 'running', endpoint: handle.endpoint });
        expect(await driver.endpoint(owner)).toEqual(handle.endpoint);
        expect(driver.running()).toBe(1);

        const network = await docker.getNetwork(networkName(owner)).inspect();
        expect(network).toMatchObject({ Driver: 'overlay', Scope: 'swarm', Attachable: true, Internal: false });
        expect(network.IPAM?.Config?.[0]?.Subnet).toMatch(/^10\.200\.\d+\.\d+\/28$/);

        const service = await docker.getService(containerName(owner)).inspect();
        const task = service.Spec.TaskTemplate;
        expect(service.Spec.Mode).toEqual({ Replicated: { Replicas: 1 } });
        expect(service.Spec.Labels).toMatchObject({ [LABELS.owner]: owner, [LABELS.scope]: TEST_SCOPE, [LABELS.role]: 'proxy' });
        expect(task.ContainerSpec).toMatchObject({ User: '1001:1001', ReadOnly: true, CapabilityDrop: ['ALL'] });
        expect(task.ContainerSpec.Image).toMatch(/^sha256:/); // by id: never pulled from a registry
        expect(task.RestartPolicy).toMatchObject({ Condition: 'none' });
        expect(task.Resources.Limits).toEqual({ MemoryBytes: 128 * 1024 * 1024, NanoCPUs: 500_000_000, Pids: 64 });
        expect(task.Placement.Constraints).toEqual([expect.stringMatching(/^node\.id==/)]);
        expect(service.Spec.EndpointSpec?.Ports ?? []).toEqual([]);

        // The running task is held to it by the engine, not just described.
        const container = await taskContainer(owner);
        expect(container.Config.User).toBe('1001:1001');
        expect(container.HostConfig).toMatchObject({ ReadonlyRootfs: true, CapDrop: ['ALL'], Memory: 128 * 1024 * 1024, NanoCpus: 500_000_000, PidsLimit: 64 });
        expect(container.HostConfig.PortBindings ?? {}).toEqual({});
        expect(await execIn(container.Id, "require('fs').writeFile('/app-file', 'x', (e) => process.stdout.write(e ? e.code : 'written'))")).toBe('EROFS');
        expect(await execIn(container.Id, "require('fs').writeFile('/tmp/file', 'x', (e) => process.stdout.write(e ? e.code : 'written'))")).toBe('written');

        await driver.remove(owner);
        expect(await driver.inspect(owner)).toBeNull();
        expect(await waitGone([owner])).toEqual({ services: [], networks: [], containers: [] });
        expect(driver.running()).toBe(0);
        expect(exits).toEqual([]); // a stop asked for is no crash
      } finally {
        await driver.close();
      }
    });

    it('reports a proxy that dies on its own once, and clears its service and network', async () => {
      const { driver, exits } = swarmDriver({ networkMode: 'host' });
      const other = randomOwner();
      try {
        await driver.start();
        await driver.create(other);
        await docker.getContainer((await taskContainer(other)).Id).kill();
        const deadline = Date.now() + 20_000;
        while (exits.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
        expect(exits).toEqual([{ ownerHash: other, detail: expect.stringContaining('exited') }]);
        expect(await waitGone([other])).toEqual({ services: [], networks: [], containers: [] });
        expect(await driver.inspect(other)).toBeNull();
        expect(exits).toHaveLength(1);
      } finally {
        await driver.close();
        await removeOwners([other]);
      }
    });

    it('does not take a proxy one replica removed for a crash on another replica: the task stops with a SIGTERM kill event before its die, a crash has none', async () => {
      // Two drivers on one engine and scope: two api-backend replicas.
      const [one, two] = [swarmDriver({ networkMode: 'host' }), swarmDriver({ networkMode: 'host' })];
      const [removed, crashed] = [randomOwner(), randomOwner()];
      try {
        await one.driver.start();
        await one.driver.create(removed);
        await two.driver.start();
        const task = (await taskContainer(removed)).Id;
        const since = Math.floor(Date.now() / 1000) - 1;
        await one.driver.remove(removed);
        expect(await waitGone([removed])).toEqual({ services: [], networks: [], containers: [] });
        // What every replica read from the engine about that task container, in order.
        const stream = await docker.getEvents({ since, until: Math.ceil(Date.now() / 1000) + 1, filters: { type: ['container'], container: [task], event: ['kill', 'die'] } });
        let text = '';
        for await (const chunk of stream as AsyncIterable<Buffer>) text += chunk.toString();
        const seen = text
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as { Action: string; Actor: { Attributes: Record<string, string> } })
          .map((event) => (event.Action === 'kill' ? `kill ${event.Actor.Attributes.signal}` : event.Action));
        expect(seen).toEqual(['kill 15', 'die']);

        // A crash afterwards is news to both: the engine's events come in order, so the second
        // replica handled the removal before it, and had it taken that for a crash it would show here.
        await one.driver.create(crashed);
        await docker.getContainer((await taskContainer(crashed)).Id).kill();
        const deadline = Date.now() + 30_000;
        while ((one.exits.length === 0 || two.exits.length === 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
        expect(two.exits).toEqual([{ ownerHash: crashed, detail: expect.stringContaining('exited') }]);
        expect(one.exits).toEqual([{ ownerHash: crashed, detail: expect.stringContaining('exited') }]);
      } finally {
        await Promise.all([one.driver.close(), two.driver.close()]);
        await removeOwners([removed, crashed]);
      }
    });
  });

  describe('api-backend in a container, on internal overlays', () => {
    const owners = [randomOwner(), randomOwner()];
    const selfName = `ctll-test-backend-${randomBytes(4).toString('hex')}`;
    let bundleDir: string;

    afterAll(async () => {
      await docker.getContainer(selfName).remove({ force: true }).catch(() => undefined);
      await removeOwners(owners);
      if (bundleDir) fs.rmSync(bundleDir, { recursive: true, force: true });
    });

    it("two users' proxies cannot reach each other, while api-backend reaches both", async () => {
      // The driver runs in a container of its own, as under compose: overlay addresses are not
      // routable from this host (swarm-entry.ts).
      const bundle = await bundleSwarmEntry();
      bundleDir = bundle.dir;
      const entry = bundle.entry;
      const self = await docker.createContainer({
        name: selfName,
        Image: NODE_BASE_IMAGE,
        Cmd: ['node', entry],
        Tty: true, // plain output, no stream multiplexing
        // root for the engine's socket, as api-backend's docker group gives it in production.
        User: '0:0',
        Env: [
          `CTLL_OWNERS=${owners.join(',')}`,
          `CTLL_SCOPE=${TEST_SCOPE}`,
          `CTLL_SELF=${selfName}`,
          `PROXY_IMAGE=${PROXY_IMAGE}`,
          `PROXY_SUBNET_POOL=${process.env.PROXY_SUBNET_POOL ?? '10.200.0.0/16'}`,
        ],
        Labels: { 'io.cloudtolocalllm.test': 'backend' },
        HostConfig: { Binds: [`${REPO}:${REPO}:ro`, '/var/run/docker.sock:/var/run/docker.sock'] },
      });
      await self.start();
      const { StatusCode } = (await self.wait()) as { StatusCode: number };
      const logs: unknown = await self.logs({ stdout: true, stderr: true });
      // dockerode hands back output that parses as JSON already parsed.
      const output = (Buffer.isBuffer(logs) ? logs.toString('utf8') : JSON.stringify(logs)).trim();
      const result = resultOf(output);
      expect({ output, error: result.error }).toEqual({ output, error: undefined });
      expect(StatusCode).toBe(0);

      expect(result.states).toEqual(['running', 'running']);
      expect(result.internal).toEqual([true, true]);
      // The control: api-backend reaches both, so a failure below is the isolation at work.
      expect(result.fromBackend).toEqual([200, 200]);
      const [fromA, fromB] = result.fromTasks as Array<Array<number | string>>;
      expect(fromA[0]).toBe(200);
      expect(fromA[1]).not.toBe(200);
      expect(fromB[1]).toBe(200);
      expect(fromB[0]).not.toBe(200);
      // Removed with its proxies: api-backend left both overlays, and nothing of theirs is left.
      expect(result.joinedAfterRemove).toEqual([]);
      expect(await waitGone(owners)).toEqual({ services: [], networks: [], containers: [] });
    });
  });
});
