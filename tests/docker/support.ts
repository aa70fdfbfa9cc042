/**
 * What the Docker suites share: random owners (names are fixed by design, so each run uses fresh
 * owner hashes and never touches anyone else's proxies), a driver with test settings, a cleanup
 * that removes everything labelled for those owners whatever state a failed test left, and a
 * short-lived probe container that tries connections from inside a user's network.
 */
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { DockerDriver, type DockerDriverOptions } from '../../api-backend/src/proxy/docker-driver';
import { createLogger } from '../../api-backend/src/logger';
import { LABELS } from '../../api-backend/src/proxy/naming';
import { ProxySecrets } from '../../api-backend/src/proxy/proxy-secrets';
import { patiently, ProxyServices } from '../../api-backend/src/proxy/swarm-services';
import { NODE_BASE_IMAGE, PROXY_IMAGE } from './require-docker';

export const docker = new Docker();
export const logger = createLogger(process.env.CTLL_TEST_LOG_LEVEL ?? 'error');

export const randomOwner = (): string => randomBytes(8).toString('hex');

/**
 * This test run's PROXY_SCOPE: another api-backend on the same engine (a deploy smoke test, a
 * developer's instance) never adopts, sweeps or shuts down our proxies, nor we theirs.
 */
export const TEST_SCOPE = `test-${randomBytes(4).toString('hex')}`;

/** The proxies' secrets in driver-level tests, as a relay derives them (its key made for this run). */
export const TEST_SECRETS = new ProxySecrets(randomBytes(32));

export interface Exit {
  ownerHash: string;
  detail: string;
}

/** A driver as production makes it, with a short start timeout; its exits are collected in `exits`. */
export function testDriver(overrides: Partial<DockerDriverOptions> = {}): { driver: DockerDriver; exits: Exit[] } {
  const exits: Exit[] = [];
  const driver = new DockerDriver({
    image: PROXY_IMAGE,
    scope: TEST_SCOPE,
    memoryMb: 128,
    cpus: 0.5,
    subnetPool: process.env.PROXY_SUBNET_POOL ?? '10.200.0.0/16',
    // A bound on a hang: twenty containers starting at once on a busy two-core machine take a while.
    startTimeoutMs: 30_000,
    secretFor: (ownerHash) => TEST_SECRETS.secretFor(ownerHash),
    env: (ownerHash, secret) => ({ NODE_ENV: 'production', HOST: '0.0.0.0', PROXY_SECRET: secret, PROXY_USER_HASH: ownerHash, LOG_LEVEL: 'warn' }),
    logger,
    onExit: (ownerHash, detail) => exits.push({ ownerHash, detail }),
    ...overrides,
  });
  return { driver, exits };
}

/** Our containers and networks for these owners, as the engine lists them. */
export async function leftovers(owners: Iterable<string>): Promise<{ containers: string[]; networks: string[] }> {
  const wanted = new Set(owners);
  const filters = { label: [`${LABELS.managed}=true`] };
  const [containers, networks] = await Promise.all([docker.listContainers({ all: true, filters }), docker.listNetworks({ filters })]);
  return {
    containers: containers.filter((c) => wanted.has(c.Labels[LABELS.owner])).map((c) => c.Names[0]),
    networks: networks.filter((n) => wanted.has(n.Labels?.[LABELS.owner] ?? '')).map((n) => n.Name),
  };
}

/** Our swarm proxy services (PROXY_DRIVER=swarm) the engine lists; none where it is no swarm manager. */
async function listServices(filters: { label: string[] }): Promise<Docker.Service[]> {
  return docker.listServices({ filters }).catch((error: { statusCode?: number }) => {
    if (error.statusCode === 503) return [];
    throw error;
  });
}

/**
 * Removes every service, container and network labelled for these owners; safe to call whatever
 * is left. Services go first and are waited for: a swarm task holds its overlay until it has
 * stopped, and the overlay lingers a moment after that.
 */
export async function removeOwners(owners: Iterable<string>): Promise<void> {
  const wanted = new Set(owners);
  const filters = { label: [`${LABELS.managed}=true`] };
  const services = (await listServices(filters)).filter((s) => wanted.has(s.Spec?.Labels?.[LABELS.owner] ?? ''));
  await Promise.all(services.map((s) => new ProxyServices(docker, s.Spec?.Labels?.[LABELS.scope] ?? '').remove(s.ID).catch(() => undefined)));
  const containers = (await docker.listContainers({ all: true, filters })).filter((c) => wanted.has(c.Labels[LABELS.owner]));
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  const networks = (await docker.listNetworks({ filters })).filter((n) => wanted.has(n.Labels?.[LABELS.owner] ?? ''));
  for (const network of networks) {
    const info = await docker.getNetwork(network.Id).inspect().catch(() => undefined);
    for (const id of Object.keys(info?.Containers ?? {})) await docker.getNetwork(network.Id).disconnect({ Container: id, Force: true }).catch(() => undefined);
    const removed = () => docker.getNetwork(network.Id).remove().then(
      () => true,
      (error: { statusCode?: number }) => error.statusCode === 404,
    );
    if (network.Scope === 'swarm') await patiently(removed).catch(() => undefined);
    else await removed();
  }
}

/**
 * Runs `node -e script` in a throw-away container of the base image on `network` and returns what
 * it printed. The image has no shell, so this is how a test acts from inside a user's network.
 */
export async function probeFrom(network: string, script: string, timeoutMs = 15_000): Promise<string> {
  const container = await docker.createContainer({
    name: `ctll-test-probe-${randomBytes(4).toString('hex')}`,
    Image: NODE_BASE_IMAGE,
    Cmd: ['node', '-e', script],
    Tty: true, // plain output, no stream multiplexing
    User: '1001:1001',
    Labels: { 'io.cloudtolocalllm.test': 'probe' },
    HostConfig: { NetworkMode: network },
  });
  try {
    await container.start();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('probe timed out')), timeoutMs)));
    await Promise.race([container.wait(), timeout]).finally(() => clearTimeout(timer));
    const output: unknown = await container.logs({ stdout: true, stderr: true });
    // dockerode hands back output that parses as JSON already parsed.
    return (Buffer.isBuffer(output) ? output.toString('utf8') : JSON.stringify(output)).trim();
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/** A node script that tries TCP connections and prints one JSON object {"host:port": "connected" | error code}. */
export function connectScript(targets: Array<{ host: string; port: number }>, timeoutMs = 2000): string {
  return `
    const net = require('net');
    const results = {};
    Promise.all(${JSON.stringify(targets)}.map(({ host, port }) => new Promise((done) => {
      const socket = net.connect({ host, port, timeout: ${timeoutMs} });
      const finish = (what) => { results[host + ':' + port] = what; socket.destroy(); done(); };
      socket.on('connect', () => finish('connected'));
      socket.on('timeout', () => finish('timeout'));
      socket.on('error', (error) => finish(error.code || error.message));
    }))).then(() => console.log(JSON.stringify(results)));`;
}

export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function health(host: string, port: number, timeoutMs = 3000): Promise<number> {
  const res = await fetch(`http://${host}:${port}/health`, { signal: AbortSignal.timeout(timeoutMs) });
  return res.status;
}

/**
 * Removes every service, container and network of one PROXY_SCOPE: what an operator does after the
 * last api-backend of a relay is gone for good (a shutdown leaves docker and swarm proxies running
 * for the next).
 */
export async function removeScope(scope: string): Promise<void> {
  const filters = { label: [`${LABELS.managed}=true`, `${LABELS.scope}=${scope}`] };
  const owners = new Set<string>();
  for (const s of await listServices(filters)) if (s.Spec?.Labels?.[LABELS.owner]) owners.add(s.Spec.Labels[LABELS.owner]);
  for (const c of await docker.listContainers({ all: true, filters })) owners.add(c.Labels[LABELS.owner]);
  for (const n of await docker.listNetworks({ filters })) if (n.Labels?.[LABELS.owner]) owners.add(n.Labels[LABELS.owner]);
  await removeOwners(owners);
}
