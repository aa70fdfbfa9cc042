/**
 * PROXY_NETWORK_MODE=container: api-backend itself runs in a container, so the driver joins that
 * container to each user's network before the proxy starts (telling the proxy where to find it)
 * and takes it off again before the network goes. Here a stand-in container plays api-backend.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { containerName, networkName } from '../../api-backend/src/proxy/naming';
import { detectPlacement } from '../../api-backend/src/proxy/docker/placement';
import { describeDocker, NODE_BASE_IMAGE } from './require-docker';
import { docker, leftovers, randomOwner, removeOwners, testDriver } from './support';

jest.setTimeout(60_000);

describeDocker('docker driver in container mode', () => {
  const owner = randomOwner();
  let self: Docker.Container;
  const selfName = `ctll-test-backend-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    self = await docker.createContainer({
      name: selfName,
      Image: NODE_BASE_IMAGE,
      Cmd: ['node', '-e', 'setInterval(() => {}, 1 << 30)'],
      User: '1001:1001',
      Labels: { 'io.cloudtolocalllm.test': 'backend' },
    });
    await self.start();
  });
  afterAll(async () => {
    await removeOwners([owner]);
    await self?.remove({ force: true }).catch(() => undefined);
  });

  it('joins api-backend to the user network, tells the proxy where it is, and leaves before removing the network', async () => {
    const addresses: string[] = [];
    const { driver } = testDriver({
      networkMode: 'container',
      selfContainer: selfName,
      env: (ownerHash, secret, backendAddress) => {
        addresses.push(backendAddress);
        return { HOST: '0.0.0.0', PROXY_SECRET: secret, PROXY_USER_HASH: ownerHash, PROXY_API_BACKEND_URL: `http://${backendAddress}:8080` };
      },
    });
    try {
      await driver.start();
      expect((await driver.health()).ok).toBe(true);
      const handle = await driver.create(owner);

      const network = await docker.getNetwork(networkName(owner)).inspect();
      const attached = Object.values(network.Containers ?? {}).map((c) => ({ name: c.Name, ip: c.IPv4Address.split('/')[0] }));
      expect(attached.map((a) => a.name).sort()).toEqual([containerName(owner), selfName].sort());
      expect(addresses).toEqual([attached.find((a) => a.name === selfName)!.ip]);
      expect(await execIn(self, `fetch('http://${handle.endpoint!.host}:8080/health').then((r) => process.stdout.write(String(r.status)), (e) => process.stdout.write(e.message))`)).toBe('200');

      await driver.remove(owner);
      expect(await leftovers([owner])).toEqual({ containers: [], networks: [] });
      const selfNetworks = Object.keys((await self.inspect()).NetworkSettings.Networks);
      expect(selfNetworks).not.toContain(networkName(owner));
    } finally {
      await driver.close();
    }
  });

  it("a second replica joins the network of a proxy the first one started, on its first look, and stops it cleanly", async () => {
    const other = await docker.createContainer({
      name: `${selfName}-b`,
      Image: NODE_BASE_IMAGE,
      Cmd: ['node', '-e', 'setInterval(() => {}, 1 << 30)'],
      User: '1001:1001',
      Labels: { 'io.cloudtolocalllm.test': 'backend' },
    });
    await other.start();
    const owner2 = randomOwner();
    const first = testDriver({ networkMode: 'container', selfContainer: selfName }).driver;
    const second = testDriver({ networkMode: 'container', selfContainer: `${selfName}-b` }).driver;
    try {
      // Both running before the proxy exists: the second's start-up sweep cannot have joined it.
      await first.start();
      await second.start();
      await first.create(owner2);
      const members = async (): Promise<string[]> =>
        Object.values((await docker.getNetwork(networkName(owner2)).inspect()).Containers ?? {}).map((c) => c.Name).sort();
      expect(await members()).toEqual([containerName(owner2), selfName].sort());

      const endpoint = await second.endpoint(owner2);
      expect(endpoint).not.toBeNull();
      expect(await members()).toEqual([containerName(owner2), selfName, `${selfName}-b`].sort());
      expect(await execIn(other, `fetch('http://${endpoint!.host}:8080/health').then((r) => process.stdout.write(String(r.status)), (e) => process.stdout.write(e.message))`)).toBe('200');

      // The second stops what the first started: the first is taken off too, and nothing is left.
      await second.remove(owner2);
      expect(await leftovers([owner2])).toEqual({ containers: [], networks: [] });
      for (const container of [self, other]) expect(Object.keys((await container.inspect()).NetworkSettings.Networks)).not.toContain(networkName(owner2));
    } finally {
      await Promise.all([first.close(), second.close()]);
      await removeOwners([owner2]);
      await other.remove({ force: true }).catch(() => undefined);
    }
  });

  it('finds out by itself (PROXY_NETWORK_MODE=auto): a container only if the engine knows one with our hostname', async () => {
    const marker = path.join(os.tmpdir(), `ctll-dockerenv-${randomBytes(4).toString('hex')}`);
    fs.writeFileSync(marker, '');
    try {
      const info = await self.inspect();
      const asSelf = { markers: [marker], hostname: info.Config.Hostname };
      expect(await detectPlacement(docker, 'auto', undefined, asSelf)).toEqual({ mode: 'container', self: info.Id });
      // A marker file but no such container: a sandbox that runs the engine itself is the host.
      expect(await detectPlacement(docker, 'auto', undefined, { markers: [marker], hostname: 'ctll-not-a-container' })).toEqual({ mode: 'host' });
      expect(await detectPlacement(docker, 'auto', undefined, { markers: ['/nonexistent/.dockerenv'], hostname: info.Config.Hostname })).toEqual({ mode: 'host' });
      expect(await detectPlacement(docker, 'host', selfName)).toEqual({ mode: 'host' });
      expect(await detectPlacement(docker, 'auto', selfName)).toEqual({ mode: 'container', self: selfName });
    } finally {
      fs.rmSync(marker, { force: true });
    }
  });

  it('says so in /health when it cannot find its own container', async () => {
    const { driver } = testDriver({ networkMode: 'container', selfContainer: 'ctll-no-such-backend' });
    try {
      expect(await driver.health()).toMatchObject({ ok: false, detail: expect.stringContaining('PROXY_SELF_CONTAINER') });
    } finally {
      await driver.close();
    }
  });
});

/** Runs `node -e` inside a running container (no shell needed) and returns its output. */
async function execIn(container: Docker.Container, script: string): Promise<string> {
  const exec = await container.exec({ Cmd: ['node', '-e', script], AttachStdout: true, AttachStderr: true, Tty: true });
  const stream = await exec.start({ hijack: true, stdin: false, Tty: true });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise((resolve) => stream.on('end', resolve));
  return Buffer.concat(chunks).toString('utf8').trim();
}
