/**
 * Churn: 100 start/stop cycles across 20 users (5 each, the users in parallel) through the
 * manager leave not one container or network behind, and every start gave a routable proxy.
 */
import { randomBytes } from 'node:crypto';
import { StreamingProxyManager } from '../../api-backend/src/proxy/manager';
import { ProxyClient } from '../../api-backend/src/proxy/proxy-client';
import { userHash } from '../../api-backend/src/proxy/naming';
import type { DockerDriver } from '../../api-backend/src/proxy/docker-driver';
import { describeDocker } from './require-docker';
import { health, leftovers, logger, removeOwners, testDriver } from './support';

const USERS = 20;
const CYCLES_PER_USER = 5;

jest.setTimeout(10 * 60_000);

describeDocker('docker driver churn', () => {
  const users = Array.from({ length: USERS }, (_, i) => `churn-${i}-${randomBytes(4).toString('hex')}`);
  const owners = users.map(userHash);
  let driver: DockerDriver;
  const client = new ProxyClient();

  afterAll(async () => {
    await driver?.close();
    client.close();
    await removeOwners(owners);
  });

  it(`leaves zero containers and networks after ${USERS * CYCLES_PER_USER} start/stop cycles across ${USERS} users`, async () => {
    driver = testDriver().driver;
    await driver.start();
    const manager = new StreamingProxyManager(driver, client, { idleTimeoutMs: 600_000 }, logger);
    const began = Date.now();
    const startTimes: number[] = [];
    await Promise.all(
      users.map(async (userId) => {
        for (let cycle = 0; cycle < CYCLES_PER_USER; cycle += 1) {
          const t0 = Date.now();
          const { handle, created } = await manager.ensure(userId);
          startTimes.push(Date.now() - t0);
          expect(created).toBe(true);
          // Twenty proxies starting at once beside CI's other lanes: a just-started one can take
          // seconds to answer; that it answers at all is the point here.
          expect(await health(handle.endpoint!.host, handle.endpoint!.port, 15_000)).toBe(200);
          expect(await manager.stop(userId, 'user')).toBe(true);
        }
      }),
    );
    const took = Date.now() - began;
    expect(await leftovers(owners)).toEqual({ containers: [], networks: [] });
    startTimes.sort((a, b) => a - b);
    const p = (q: number) => startTimes[Math.min(startTimes.length - 1, Math.floor(q * startTimes.length))];
    process.stderr.write(`[docker] ${startTimes.length} cycles across ${USERS} users in ${(took / 1000).toFixed(1)} s; start under load p50 ${p(0.5)} ms, p95 ${p(0.95)} ms\n`);
  });
});
