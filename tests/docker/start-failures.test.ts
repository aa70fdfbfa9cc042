/**
 * Starts that fail for an operator's setting, and what follows. First, a start that runs out of
 * PROXY_START_TIMEOUT_MS, then the user's next try. What the user sees:
 * the catalogue's `proxy_start_failed` (503) with the public message, never a hang; what the
 * operator sees: the cause in the error's detail (for the log), and nothing left on the engine by
 * the failed start (no container or service, no network, no subnet held). The next start, given
 * the time it needs, makes exactly one proxy that answers.
 *
 * The two tries are two drivers on one scope, as two api-backend processes (or one restarted with
 * a higher PROXY_START_TIMEOUT_MS, as the error's hint says) would be: the first with a timeout no
 * start can meet on this machine, the second with the tests' usual one. Second, a swarm start no
 * node can take (PROXY_PLACEMENT matches no node): the message names the setting, not the timeout.
 */
import { RelayError } from '@ctll/protocol';
import { SwarmDriver } from '../../api-backend/src/proxy/swarm-driver';
import { LABELS, containerName, networkName } from '../../api-backend/src/proxy/naming';
import type { ProxyDriver } from '../../api-backend/src/proxy/driver';
import { PROXY_IMAGE, describeDocker } from './require-docker';
import { describeSwarm } from './require-swarm';
import { docker, health, logger, randomOwner, removeOwners, testDriver, TEST_SCOPE, TEST_SECRETS } from './support';

jest.setTimeout(180_000);

interface Outcome {
  status?: number;
  code?: string;
  publicMessage?: string;
  detail: string;
}

async function startOutcome(driver: ProxyDriver, owner: string): Promise<Outcome> {
  try {
    const handle = await driver.create(owner);
    return { detail: `started unexpectedly: ${handle.id}` };
  } catch (error) {
    if (!(error instanceof RelayError)) return { detail: `not a relay error: ${(error as Error).message}` };
    return { status: error.status, code: error.code, publicMessage: error.publicMessage, detail: error.message };
  }
}

/** What the engine still holds for this owner: containers (task containers too), services, networks. */
async function onEngine(owner: string): Promise<{ containers: number; services: number; networks: number }> {
  const filters = { label: [`${LABELS.owner}=${owner}`] };
  const [containers, networks] = await Promise.all([docker.listContainers({ all: true, filters }), docker.listNetworks({ filters })]);
  const services = await docker.listServices({ filters }).catch(() => []); // not a swarm manager: none
  return { containers: containers.length, services: services.length, networks: networks.length };
}

async function settled(owner: string, want: { containers: number; services: number; networks: number }, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let now = await onEngine(owner);
  while (JSON.stringify(now) !== JSON.stringify(want) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    now = await onEngine(owner);
  }
  return now;
}

const PUBLIC_MESSAGE = 'the relay cannot start your streaming proxy right now; try again later (the operator finds the cause in the relay log)';

describeDocker('a docker start that times out, then the next try', () => {
  const owner = randomOwner();
  afterAll(() => removeOwners([owner]));

  it('fails with proxy_start_failed naming the setting that timed out, leaves no container or network, and the next start makes one proxy', async () => {
    const hasty = testDriver({ startTimeoutMs: 1 }).driver;
    const patient = testDriver().driver;
    try {
      await hasty.start();
      const failed = await startOutcome(hasty, owner);
      expect(failed).toMatchObject({ status: 503, code: 'proxy_start_failed', publicMessage: PUBLIC_MESSAGE });
      expect(failed.detail).toMatch(/within 1 ms \(PROXY_START_TIMEOUT_MS; last: /);
      expect(await settled(owner, { containers: 0, services: 0, networks: 0 })).toEqual({ containers: 0, services: 0, networks: 0 });
      expect(hasty.running()).toBe(0);

      await patient.start();
      const handle = await patient.create(owner);
      expect(await health(handle.endpoint!.host, handle.endpoint!.port)).toBe(200);
      expect(await onEngine(owner)).toEqual({ containers: 1, services: 0, networks: 1 });
      expect((await docker.getContainer(containerName(owner)).inspect()).Id).toBe(handle.id);
    } finally {
      await hasty.close();
      await patient.close();
    }
  });
});

describeSwarm('a swarm start that times out, then the next try', () => {
  const owner = randomOwner();
  afterAll(async () => {
    await docker.getService(containerName(owner)).remove().catch(() => undefined);
    await settled(owner, { containers: 0, services: 0, networks: 0 });
    await docker.getNetwork(networkName(owner)).remove().catch(() => undefined);
  });

  const swarmDriver = (startTimeoutMs: number, placement?: string[]) =>
    new SwarmDriver({
      placement,
      image: PROXY_IMAGE,
      scope: TEST_SCOPE,
      memoryMb: 128,
      cpus: 0.5,
      subnetPool: process.env.PROXY_SUBNET_POOL ?? '10.200.0.0/16',
      startTimeoutMs,
      secretFor: (ownerHash) => TEST_SECRETS.secretFor(ownerHash),
      env: (ownerHash, secret) => ({ NODE_ENV: 'production', HOST: '0.0.0.0', PROXY_SECRET: secret, PROXY_USER_HASH: ownerHash, LOG_LEVEL: 'warn' }),
      logger,
      networkMode: 'host',
      onExit: () => undefined,
    });

  it('fails with proxy_start_failed telling the operator what to raise, leaves no service, task or overlay, and the next start makes one service', async () => {
    // No task is scheduled, prepared and started within 200 ms on this machine: the start misses its bound.
    const hasty = swarmDriver(200);
    const patient = swarmDriver(90_000);
    try {
      await hasty.start();
      const failed = await startOutcome(hasty, owner);
      expect(failed).toMatchObject({ status: 503, code: 'proxy_start_failed', publicMessage: PUBLIC_MESSAGE });
      expect(failed.detail).toMatch(/^StreamingProxy failed to start: no task running within 200 ms \(.*\); .*raise PROXY_START_TIMEOUT_MS$/);
      expect(await settled(owner, { containers: 0, services: 0, networks: 0 })).toEqual({ containers: 0, services: 0, networks: 0 });

      await patient.start();
      const handle = await patient.create(owner);
      expect(await health(handle.endpoint!.host, handle.endpoint!.port)).toBe(200);
      expect(await onEngine(owner)).toMatchObject({ services: 1, networks: 1 });
      expect((await docker.getService(containerName(owner)).inspect()).ID).toBe(handle.id);
      await patient.remove(owner);
      expect(await settled(owner, { containers: 0, services: 0, networks: 0 })).toEqual({ containers: 0, services: 0, networks: 0 });
    } finally {
      await hasty.close();
      await patient.close();
    }
  });

  it('names PROXY_PLACEMENT when no node may run the proxy, and leaves no service or overlay', async () => {
    const nowhere = randomOwner();
    const driver = swarmDriver(5_000, ['node.labels.ctll-nowhere==true']);
    try {
      await driver.start();
      const failed = await startOutcome(driver, nowhere);
      expect(failed).toMatchObject({ status: 503, code: 'proxy_start_failed', publicMessage: PUBLIC_MESSAGE });
      expect(failed.detail).toMatch(/no suitable node.*check PROXY_PLACEMENT against the nodes' labels$/);
      expect(await settled(nowhere, { containers: 0, services: 0, networks: 0 })).toEqual({ containers: 0, services: 0, networks: 0 });
    } finally {
      await driver.close();
      await docker.getService(containerName(nowhere)).remove().catch(() => undefined);
      await docker.getNetwork(networkName(nowhere)).remove().catch(() => undefined);
    }
  });
});
