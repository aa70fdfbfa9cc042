/**
 * The docker driver over time, against a real engine: concurrent starts through the manager, a
 * restart that adopts what runs and clears what is half made, a proxy killed behind our back,
 * and an engine that goes away and comes back.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { StreamingProxyManager } from '../../api-backend/src/proxy/manager';
import { ProxyClient } from '../../api-backend/src/proxy/proxy-client';
import { containerName, networkName, userHash } from '../../api-backend/src/proxy/naming';
import { containerSpec, networkSpec, type ProxySpecOptions } from '../../api-backend/src/proxy/docker/spec';
import { subnetsOf } from '../../api-backend/src/proxy/docker/networks';
import { SubnetPool } from '../../api-backend/src/proxy/subnet-pool';
import type { DockerDriver } from '../../api-backend/src/proxy/docker-driver';
import { describeDocker, NODE_BASE_IMAGE, PROXY_IMAGE } from './require-docker';
import { docker, health, leftovers, logger, randomOwner, removeOwners, TEST_SCOPE, testDriver, waitFor, type Exit } from './support';

jest.setTimeout(90_000);

describeDocker('docker driver lifecycle', () => {
  const used = new Set<string>();
  const owner = () => {
    const o = randomOwner();
    used.add(o);
    return o;
  };
  const drivers: DockerDriver[] = [];
  const started = async (overrides = {}) => {
    const made = testDriver(overrides);
    drivers.push(made.driver);
    await made.driver.start();
    return made;
  };
  // One driver per scope at a time, as in production: two would both act on every event.
  afterEach(async () => {
    await Promise.all(drivers.splice(0).map((d) => d.close()));
  });
  afterAll(() => removeOwners(used));

  it('makes one container for fifty concurrent starts through the manager, and a start during a stop runs after it', async () => {
    const { driver } = await started();
    const client = new ProxyClient();
    const manager = new StreamingProxyManager(driver, client, { idleTimeoutMs: 600_000 }, logger);
    const userId = `user-${randomBytes(6).toString('hex')}`;
    used.add(userHash(userId));
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => manager.ensure(userId)));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.handle.id)).size).toBe(1);
      expect((await leftovers([userHash(userId)])).containers).toHaveLength(1);

      const [stopped, again] = await Promise.all([manager.stop(userId, 'user'), manager.ensure(userId)]);
      expect(stopped).toBe(true);
      expect(again.created).toBe(true);
      expect(again.handle.id).not.toBe(results[0].handle.id);
      expect(await leftovers([userHash(userId)])).toEqual({ containers: [`/${containerName(userHash(userId))}`], networks: [networkName(userHash(userId))] });
      expect((await manager.status(userId)).status).toBe('running');
      await manager.stop(userId, 'user');
      expect(await leftovers([userHash(userId)])).toEqual({ containers: [], networks: [] });
    } finally {
      client.close();
    }
  });

  it('adopts running proxies after a restart, reports and removes dead ones, and clears half-made networks but not young ones', async () => {
    const first = testDriver();
    const [alive, dead] = [owner(), owner()];
    const aliveHandle = await first.driver.create(alive);
    await first.driver.create(dead);
    await first.driver.close(); // "api-backend killed": nothing follows events any more
    await docker.getContainer(containerName(dead)).kill();
    await docker.getContainer(containerName(dead)).wait();
    const halfMade = owner();
    await makeBareNetwork(halfMade, new Date(Date.now() - 120_000)); // a crashed create, two minutes ago
    // A bare network made a moment ago may be another replica's create in flight: it stays.
    const inFlight = owner();
    await makeBareNetwork(inFlight, new Date());

    const second = await started();
    const adopted = await second.driver.inspect(alive);
    expect(adopted).toMatchObject({ id: aliveHandle.id, state: 'running', endpoint: aliveHandle.endpoint });
    expect(await health(adopted!.endpoint!.host, adopted!.endpoint!.port)).toBe(200);
    expect((await second.driver.create(alive)).id).toBe(aliveHandle.id); // adopt, not replace
    expect(second.exits).toEqual([{ ownerHash: dead, detail: expect.stringMatching(/container found exited \(137\)/) }]);
    await waitFor(async () => (await leftovers([dead, halfMade])).networks.length === 0, 10_000, 'dead and half-made resources to go');
    expect(await leftovers([dead, halfMade])).toEqual({ containers: [], networks: [] });
    expect(await leftovers([alive])).toEqual({ containers: [`/${containerName(alive)}`], networks: [networkName(alive)] });
    expect(await leftovers([inFlight])).toEqual({ containers: [], networks: [networkName(inFlight)] });
  });

  it('adopts a running proxy that is slow to answer rather than replacing it (and cutting its desktops)', async () => {
    const first = testDriver();
    const slow = owner();
    const made = await first.driver.create(slow);
    await first.driver.close();
    const second = await started();
    // Frozen for longer than a health check's patience, well within a start's (30 s here).
    const container = docker.getContainer(containerName(slow));
    await container.pause();
    const thawed = new Promise<void>((resolve, reject) => setTimeout(() => container.unpause().then(() => resolve(), reject), 5_000));
    try {
      const handle = await second.driver.create(slow);
      expect(handle.id).toBe(made.id);
      expect(handle.state).toBe('running');
    } finally {
      await thawed;
    }
    expect(await health(made.endpoint!.host, made.endpoint!.port)).toBe(200);
    expect(second.exits).toEqual([]);
  });

  it('leaves a young bare network alone (a create may be in flight elsewhere) but sweeps it once it is old', async () => {
    const { driver } = await started();
    const [young, old] = [owner(), owner()];
    await makeBareNetwork(young, new Date());
    await makeBareNetwork(old, new Date(Date.now() - 5 * 60_000));
    await driver.reconcile();
    expect((await leftovers([young, old])).networks).toEqual([networkName(young)]);
    expect(await driver.inspect(young)).toMatchObject({ state: 'stopped' });
  });

  it('tells the manager when a proxy is killed behind its back, once, and cleans up after it', async () => {
    const { driver, exits } = await started();
    const [victim, bystander] = [owner(), owner()];
    await Promise.all([driver.create(victim), driver.create(bystander)]);
    await docker.getContainer(containerName(victim)).kill();
    await waitFor(() => exits.length > 0, 10_000, 'onExit');
    expect(exits).toEqual([{ ownerHash: victim, detail: 'container exited (code 137)' }]);
    await waitFor(async () => (await leftovers([victim])).networks.length === 0, 10_000, 'the dead proxy to be cleaned up');
    expect(await leftovers([victim])).toEqual({ containers: [], networks: [] });

    await driver.remove(bystander); // stopping on purpose is no news
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(exits.map((e: Exit) => e.ownerHash)).toEqual([victim]);
  });

  it('says "out of memory" when a proxy is OOM-killed at its memory cap', async () => {
    const { exits } = await started();
    const hog = owner();
    // A container labelled as this scope's proxy for `hog`, whose program only eats memory.
    const subnet = new SubnetPool('10.200.0.0/16', 28).reserve((await docker.listNetworks()).flatMap(subnetsOf))!.subnet;
    await docker.createNetwork(networkSpec(hog, subnet, SPEC));
    const spec = containerSpec(hog, subnet, {}, { ...SPEC, memoryMb: 64 });
    const container = await docker.createContainer({ ...spec, Image: NODE_BASE_IMAGE, Cmd: ['node', '-e', 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))'] });
    await container.start();
    await waitFor(() => exits.length > 0, 20_000, 'onExit');
    expect(exits[0]).toEqual({ ownerHash: hog, detail: 'killed: out of memory (PROXY_MEMORY_MB=128)' });
    expect(exits).toHaveLength(1); // the "die" that follows is the same news
    await waitFor(async () => (await leftovers([hog])).networks.length === 0, 10_000, 'the OOM-killed proxy to be cleaned up');
  });

  it('says Docker is unavailable (503 docker_unavailable, /health not ok) while the engine is gone, and recovers by itself', async () => {
    const upstream = '/var/run/docker.sock';
    if (!fs.existsSync(upstream)) return; // engine reached over TCP: this test needs the local socket
    const relay = new SocketRelay(path.join(os.tmpdir(), `ctll-docker-${randomBytes(4).toString('hex')}.sock`), upstream);
    await relay.open();
    const { driver } = await started({ dockerOptions: { socketPath: relay.path } });
    const who = owner();
    try {
      expect((await driver.health()).ok).toBe(true);
      await relay.shut();
      const down = await driver.health();
      expect(down).toMatchObject({ ok: false, detail: expect.stringContaining('Docker engine unreachable') });
      await expect(driver.create(who)).rejects.toMatchObject({ status: 503, code: 'docker_unavailable' });
      await expect(driver.inspect(who)).rejects.toMatchObject({ status: 503, code: 'docker_unavailable' });

      await relay.open();
      expect((await driver.health()).ok).toBe(true);
      const handle = await driver.create(who);
      expect(await health(handle.endpoint!.host, handle.endpoint!.port)).toBe(200);
      await waitFor(async () => (await driver.health()).detail.includes('events followed'), 15_000, 'the event stream to come back');
      await driver.remove(who);
    } finally {
      await relay.shut();
    }
  });
});

const SPEC: ProxySpecOptions = { scope: TEST_SCOPE, image: PROXY_IMAGE, memoryMb: 128, cpus: 0.5, pidsLimit: 64, tmpfsMb: 16, stopGraceSeconds: 3, logMaxSize: '10m', logMaxFiles: 2, egress: 'internet' };

/** A network labelled as ours with no container: what a create interrupted between its two steps leaves. */
async function makeBareNetwork(ownerHash: string, created: Date): Promise<void> {
  const pool = new SubnetPool('10.200.0.0/16', 28);
  const reservation = pool.reserve((await docker.listNetworks()).flatMap(subnetsOf))!;
  const spec = networkSpec(ownerHash, reservation.subnet, SPEC);
  spec.Labels!['io.cloudtolocalllm.created'] = created.toISOString();
  await docker.createNetwork(spec);
}

/** A stand-in Docker socket that forwards to the real one and can be shut and reopened: the engine "going away". */
class SocketRelay {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    readonly path: string,
    private readonly upstream: string,
  ) {}

  open(): Promise<void> {
    this.server = net.createServer((client) => {
      const engine = net.connect(this.upstream);
      for (const socket of [client, engine]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.on('close', () => engine.destroy());
      engine.on('close', () => client.destroy());
      client.pipe(engine).pipe(client);
    });
    return new Promise((resolve) => this.server!.listen(this.path, resolve));
  }

  shut(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    this.server = undefined;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}
