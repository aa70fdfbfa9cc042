/**
 * The docker driver against a real engine: what it creates (names, labels, limits, hardening,
 * read back with `docker inspect`), who can reach whom, and the errors a person sees.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxyHandle } from '../../api-backend/src/proxy/driver';
import type { DockerDriver } from '../../api-backend/src/proxy/docker-driver';
import { LABELS, containerName, networkName } from '../../api-backend/src/proxy/naming';
import { addressIn } from '../../api-backend/src/proxy/subnet-pool';
import { SCOPE_LABEL } from '../../api-backend/src/proxy/docker/spec';
import { describeDocker, PROXY_IMAGE } from './require-docker';
import { type Exit, connectScript, docker, health, leftovers, probeFrom, randomOwner, removeOwners, TEST_SCOPE, testDriver, waitFor } from './support';

jest.setTimeout(60_000);

describeDocker('docker driver: per-user containers and networks', () => {
  const owners = [randomOwner(), randomOwner(), randomOwner()];
  const [alice, bob, carol] = owners;
  const used = new Set<string>(owners);
  let driver: DockerDriver;
  let exits: Exit[];
  const handles = new Map<string, ProxyHandle>();

  beforeAll(async () => {
    ({ driver, exits } = testDriver());
    await driver.start();
    for (const [ownerHash, handle] of await Promise.all(owners.map(async (o) => [o, await driver.create(o)] as const))) handles.set(ownerHash, handle);
  });
  afterAll(async () => {
    await driver?.close();
    await removeOwners(used);
  });

  it('names the container and network after the owner hash and labels both', async () => {
    const container = await docker.getContainer(containerName(alice)).inspect();
    const network = await docker.getNetwork(networkName(alice)).inspect();
    const subnet = network.IPAM!.Config![0].Subnet!;
    expect(container.Name).toBe(`/ctll-proxy-${alice}`);
    expect(network.Name).toBe(`ctll-net-${alice}`);
    for (const [labels, role] of [[container.Config.Labels, 'proxy'], [network.Labels, 'network']] as const) {
      expect(labels).toMatchObject({
        [LABELS.managed]: 'true',
        [LABELS.owner]: alice,
        [LABELS.role]: role,
        [LABELS.image]: PROXY_IMAGE,
        [LABELS.subnet]: subnet,
        [SCOPE_LABEL]: TEST_SCOPE,
      });
      expect(Date.now() - Date.parse(labels![LABELS.created])).toBeLessThan(120_000);
    }
    expect(handles.get(alice)).toMatchObject({ ownerHash: alice, id: container.Id, state: 'running' });
  });

  it('gives each user a bridge network of its own, a /28 from the pool, with only that proxy on it', async () => {
    const subnets = new Set<string>();
    for (const ownerHash of owners) {
      const network = await docker.getNetwork(networkName(ownerHash)).inspect();
      expect(network.Driver).toBe('bridge');
      const subnet = network.IPAM!.Config![0].Subnet!;
      expect(subnet).toMatch(/^10\.200\.\d+\.\d+\/28$/);
      subnets.add(subnet);
      const attached = Object.values(network.Containers ?? {}).map((c) => c.Name);
      expect(attached).toEqual([containerName(ownerHash)]);
      expect(handles.get(ownerHash)!.endpoint!.host).toBe(Object.values(network.Containers!)[0].IPv4Address.split('/')[0]);
    }
    expect(subnets.size).toBe(owners.length);
  });

  it('applies the limits and hardening: memory without swap, CPU quota, pids, read-only root, no capabilities, uid 1001', async () => {
    const { HostConfig: host, Config: config } = await docker.getContainer(containerName(bob)).inspect();
    expect(host.Memory).toBe(128 * 1024 * 1024);
    expect(host.MemorySwap).toBe(128 * 1024 * 1024);
    expect(host.NanoCpus).toBe(500_000_000);
    expect(host.CpuShares ?? 0).toBe(0);
    expect(host.PidsLimit).toBe(64);
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.Tmpfs).toEqual({ '/tmp': expect.stringMatching(/noexec.*nosuid|nosuid.*noexec/) });
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd ?? []).toEqual([]);
    expect(host.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(host.Privileged).toBe(false);
    expect(host.RestartPolicy?.Name === '' || host.RestartPolicy?.Name === 'no').toBe(true);
    expect(host.PublishAllPorts).toBe(false);
    expect(Object.keys(host.PortBindings ?? {})).toEqual([]);
    expect(host.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } });
    expect(config.User).toBe('1001:1001');
    const env = config.Env.map((entry) => entry.split('=')[0]);
    expect(env).toEqual(expect.arrayContaining(['PROXY_SECRET', 'PROXY_USER_HASH', 'PORT']));
    expect(env.some((name) => /DATABASE|AUTH0|JWT/.test(name))).toBe(false);
    const ports = (await docker.listContainers({ filters: { name: [containerName(bob)] } }))[0].Ports;
    expect(ports.filter((p) => p.PublicPort)).toEqual([]);
  });

  it('gives every proxy its own secret, and the proxy insists on it', async () => {
    const secrets = owners.map((o) => handles.get(o)!.endpoint!.secret);
    expect(new Set(secrets).size).toBe(owners.length);
    expect(secrets.every((s) => s.length >= 32)).toBe(true);
    const { host, port, secret } = handles.get(alice)!.endpoint!;
    expect((await fetch(`http://${host}:${port}/status`)).status).toBe(401);
    expect((await fetch(`http://${host}:${port}/status`, { headers: { 'x-ctll-proxy-secret': secret } })).status).toBe(200);
  });

  it('lets api-backend (this process, on the host) reach every proxy, but no proxy network reach another user', async () => {
    for (const ownerHash of owners) {
      const { host, port } = handles.get(ownerHash)!.endpoint!;
      expect(await health(host, port)).toBe(200);
    }
    const own = handles.get(alice)!.endpoint!;
    const others = [bob, carol].map((o) => handles.get(o)!.endpoint!);
    const output = await probeFrom(networkName(alice), connectScript([own, ...others].map(({ host, port }) => ({ host, port }))));
    const results = JSON.parse(output.split('\n').pop()!) as Record<string, string>;
    expect(results[`${own.host}:${own.port}`]).toBe('connected');
    for (const other of others) expect(results[`${other.host}:${other.port}`]).not.toBe('connected');
  });

  it("lets a proxy reach api-backend at its network's gateway address", async () => {
    const server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const network = await docker.getNetwork(networkName(alice)).inspect();
      const gateway = addressIn(network.IPAM!.Config![0].Subnet!, 1);
      const output = await probeFrom(networkName(alice), connectScript([{ host: gateway, port }]));
      expect(JSON.parse(output.split('\n').pop()!)).toEqual({ [`${gateway}:${port}`]: 'connected' });
    } finally {
      server.close();
    }
  });

  it('reports what the engine has: inspect by name, list by label', async () => {
    expect(await driver.inspect(carol)).toMatchObject({ ownerHash: carol, state: 'running', endpoint: handles.get(carol)!.endpoint });
    const listed = (await driver.list()).filter((h) => used.has(h.ownerHash));
    expect(listed.map((h) => h.ownerHash).sort()).toEqual([...owners].sort());
    expect(await driver.inspect(randomOwner())).toBeNull();
  });

  it('removes container and network, and removing again is quietly done', async () => {
    await driver.remove(carol);
    expect(await driver.inspect(carol)).toBeNull();
    expect(await leftovers([carol])).toEqual({ containers: [], networks: [] });
    await expect(driver.remove(carol)).resolves.toBeUndefined();
  });

  it('shows a proxy as stopped while only its network exists, and remove clears it', async () => {
    // A driver of a scope of its own that follows no events: the started driver above would
    // clean up a proxy removed under it (next test) and race this look at the bare network.
    const quiet = testDriver({ scope: `${TEST_SCOPE}-quiet` }).driver;
    const owner = randomOwner();
    used.add(owner);
    try {
      await quiet.create(owner);
      await docker.getContainer(containerName(owner)).remove({ force: true });
      expect(await quiet.inspect(owner)).toMatchObject({ ownerHash: owner, state: 'stopped' });
      expect((await quiet.list()).find((h) => h.ownerHash === owner)).toMatchObject({ state: 'stopped' });
      await quiet.remove(owner);
      expect(await quiet.inspect(owner)).toBeNull();
      expect(await leftovers([owner])).toEqual({ containers: [], networks: [] });
    } finally {
      await quiet.close();
    }
  });

  it('reports a proxy removed outside api-backend once, and removes its network with it', async () => {
    await docker.getContainer(containerName(bob)).remove({ force: true });
    await waitFor(async () => (await leftovers([bob])).networks.length === 0, 30_000, "bob's network to be removed");
    expect(await driver.inspect(bob)).toBeNull();
    // Force-removing a running container is a die and then a destroy: still one report.
    expect(exits.filter((e) => e.ownerHash === bob)).toEqual([{ ownerHash: bob, detail: expect.stringMatching(/^container (exited|removed outside)/) }]);
  });

  it('makes networks internal when egress is off, and still reaches the proxy', async () => {
    const owner = randomOwner();
    used.add(owner);
    const { driver: closed } = testDriver({ egress: 'none' });
    try {
      const handle = await closed.create(owner);
      expect((await docker.getNetwork(networkName(owner)).inspect()).Internal).toBe(true);
      expect(await health(handle.endpoint!.host, handle.endpoint!.port)).toBe(200);
      await closed.remove(owner);
    } finally {
      await closed.close();
    }
  });
});

describeDocker('docker driver: errors a person can act on', () => {
  const owner = randomOwner();
  afterAll(() => removeOwners([owner]));

  it('refuses to start a proxy whose image is missing, names the image and how to build it, and leaves nothing behind', async () => {
    const image = 'ctll/streaming-proxy:does-not-exist';
    const { driver } = testDriver({ image });
    try {
      const error = await driver.create(owner).then(
        () => undefined,
        (e: unknown) => e as { status: number; code: string; message: string },
      );
      expect(error).toMatchObject({ status: 503, code: 'proxy_image_missing' });
      expect(error!.message).toContain(image);
      expect(error!.message).toContain('npm run docker:build');
      expect(error!.message).toContain('npm run docker:base-image');
      expect(await leftovers([owner])).toEqual({ containers: [], networks: [] });
      const status = await driver.health();
      expect(status.ok).toBe(false);
      expect(status.detail).toContain(image);
      expect(await docker.getImage(image).inspect().catch(() => 'absent')).toBe('absent'); // never pulled
    } finally {
      await driver.close();
    }
  });

  it('says when a proxy never becomes healthy, and cleans up', async () => {
    // A proxy with a secret it refuses (too short) exits at once: the start fails with the reason.
    const { driver } = testDriver({ env: (ownerHash) => ({ PROXY_SECRET: 'short', PROXY_USER_HASH: ownerHash }) });
    try {
      const error = await driver.create(owner).catch((e: Error) => e);
      expect(error).toMatchObject({ status: 503, code: 'proxy_start_failed', message: expect.stringContaining('exit code') });
      expect(await leftovers([owner])).toEqual({ containers: [], networks: [] });
    } finally {
      await driver.close();
    }
  });

  it('says when the subnet pool is used up, and carries on once a network is freed', async () => {
    const [first, second] = [randomOwner(), randomOwner()];
    const { driver } = testDriver({ subnetPool: '10.252.0.0/28', subnetPrefix: 28 }); // room for one user
    try {
      await driver.create(first);
      await expect(driver.create(second)).rejects.toMatchObject({
        status: 503,
        code: 'proxy_subnets_exhausted',
        message: expect.stringContaining('PROXY_SUBNET_POOL=10.252.0.0/28'),
      });
      expect(await leftovers([second])).toEqual({ containers: [], networks: [] });
      await driver.remove(first);
      expect((await driver.create(second)).state).toBe('running');
      await driver.remove(second);
    } finally {
      await driver.close();
      await removeOwners([first, second]);
    }
  });

  it('reports a healthy engine with the image present', async () => {
    const { driver } = testDriver();
    try {
      expect(await driver.health()).toMatchObject({ ok: true, detail: expect.stringContaining(PROXY_IMAGE) });
    } finally {
      await driver.close();
    }
  });
});
