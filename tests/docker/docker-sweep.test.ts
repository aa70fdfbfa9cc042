/**
 * The idle sweep with many proxies and one that fails every inspect: the sweep still culls every
 * other idle proxy. The failing one is made for real on the engine: its container is renamed
 * behind the driver's back and a container that is not ours takes its name, so every inspect of
 * that owner is refused ("exists but was not made by this api-backend") while the renamed proxy
 * still runs, answers and looks idle in the driver's list. It is the newest, so the engine lists it
 * first: a sweep that gave up at the first failure would cull nobody.
 *
 * SWEEP_PROXIES (default 25) sets how many proxies. CI runs the 200, alone after the other
 * suites (see .ci/run): 200 took 426 s to start and 149 s to sweep on a loaded 2-core machine.
 */
import { randomBytes } from 'node:crypto';
import { StreamingProxyManager } from '../../api-backend/src/proxy/manager';
import { ProxyClient } from '../../api-backend/src/proxy/proxy-client';
import { containerName, userHash } from '../../api-backend/src/proxy/naming';
import type { DockerDriver } from '../../api-backend/src/proxy/docker-driver';
import { mapLimit } from '../../api-backend/src/proxy/map-limit';
import { describeDocker, NODE_BASE_IMAGE } from './require-docker';
import { docker, leftovers, logger, removeOwners, testDriver } from './support';

const PROXIES = Number(process.env.SWEEP_PROXIES ?? 25);
const IDLE_MS = 1_000;

jest.setTimeout(15 * 60_000);

describeDocker('idle sweep with one proxy that fails every inspect', () => {
  const tag = randomBytes(4).toString('hex');
  const users = Array.from({ length: PROXIES }, (_, i) => `sweep-${i}-${tag}`);
  const owners = users.map(userHash);
  const broken = users[users.length - 1];
  const impostor = containerName(userHash(broken));
  let driver: DockerDriver;
  const client = new ProxyClient();

  afterAll(async () => {
    await docker.getContainer(impostor).remove({ force: true }).catch(() => undefined);
    await driver?.close();
    client.close();
    await removeOwners(owners);
  });

  it(`culls the ${PROXIES - 1} idle proxies though one fails every inspect`, async () => {
    driver = testDriver().driver;
    await driver.start();
    const manager = new StreamingProxyManager(driver, client, { idleTimeoutMs: IDLE_MS }, logger);
    const began = Date.now();
    // All but the broken one a few at a time; the broken one last, so it is the newest.
    await mapLimit(users.slice(0, -1), 8, (user) => manager.ensure(user));
    await manager.ensure(broken);
    process.stderr.write(`[docker] ${PROXIES} proxies started in ${((Date.now() - began) / 1000).toFixed(1)} s\n`);

    const moved = `${impostor}-moved-${tag}`;
    await docker.getContainer(impostor).rename({ name: moved });
    await (
      await docker.createContainer({ name: impostor, Image: NODE_BASE_IMAGE, Cmd: ['node', '-e', 'setInterval(() => {}, 1e9)'], HostConfig: { NetworkMode: 'none' } })
    ).start();
    await expect(driver.inspect(userHash(broken))).rejects.toThrow(/not made by this api-backend/);

    await new Promise((resolve) => setTimeout(resolve, IDLE_MS + 200));
    const swept = Date.now();
    const culled = await manager.sweep();
    process.stderr.write(`[docker] sweep of ${PROXIES} proxies took ${((Date.now() - swept) / 1000).toFixed(1)} s\n`);
    expect(culled).toBe(PROXIES - 1);
    const left = await leftovers(owners);
    // Only the broken proxy's container is left (under its new name), and its network.
    expect(left.containers).toEqual([`/${moved}`]);
    expect(left.networks).toHaveLength(1);
  });
});
