/**
 * Runs inside a container, as production's api-backend does under PROXY_DRIVER=swarm: a swarm
 * driver in container mode (it joins each user's overlay) starts two users' proxies on internal
 * overlays, then checks who reaches whom: itself both proxies, and each proxy only itself (by
 * running a probe inside each task). It prints one JSON line for swarm-driver.test.ts (run as a
 * plain container, as under compose) and swarm-task-mode.test.ts (run as a swarm task, as a stack
 * replica), which bundle and start it (swarm-entry.ts): overlay addresses are reachable only from a
 * container on the overlay, never from the host the tests run on. CTLL_SELF names the container;
 * without it the driver finds itself by hostname, as a stack replica does. CTLL_PLACEMENT (comma
 * separated) places the proxies, and CTLL_TASK_ENGINE names the engine socket of the node they run
 * on when that is another (swarm-nodes-driver.test.ts, on the two-node test swarm).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import Docker from 'dockerode';
import { SwarmDriver } from '../../api-backend/src/proxy/swarm-driver';
import { createLogger } from '../../api-backend/src/logger';
import { ProxySecrets } from '../../api-backend/src/proxy/proxy-secrets';
import { containerName, networkName } from '../../api-backend/src/proxy/naming';
import { anchorName } from '../../api-backend/src/proxy/swarm-anchor';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const docker = new Docker();
/** The engine of the node the proxies' tasks run on. */
const taskEngine = process.env.CTLL_TASK_ENGINE ? new Docker({ socketPath: process.env.CTLL_TASK_ENGINE }) : docker;
const placement = process.env.CTLL_PLACEMENT ? process.env.CTLL_PLACEMENT.split(',') : undefined;
const owners = env('CTLL_OWNERS').split(',');
const self = process.env.CTLL_SELF || undefined;
const secrets = new ProxySecrets(randomBytes(32));

/** GET /health on each address from `fetch` here: a status code, or the error's code. */
async function healthFrom(hosts: string[]): Promise<Array<number | string>> {
  return Promise.all(
    hosts.map((host) =>
      fetch(`http://${host}:8080/health`, { signal: AbortSignal.timeout(3000) }).then(
        (res) => res.status,
        (error: { cause?: { code?: string }; name: string }) => error.cause?.code ?? error.name,
      ),
    ),
  );
}

/** The same probe, run by node inside the owner's running task container. */
async function healthInTask(owner: string, hosts: string[]): Promise<Array<number | string>> {
  const [task] = await taskEngine.listContainers({ filters: { label: [`com.docker.swarm.service.name=${containerName(owner)}`], status: ['running'] } });
  if (!task) throw new Error(`no running task for ${containerName(owner)}`);
  const script = `Promise.all(${JSON.stringify(hosts)}.map((host) => fetch('http://' + host + ':8080/health', { signal: AbortSignal.timeout(3000) })
    .then((r) => r.status, (e) => (e.cause && e.cause.code) || e.name))).then((r) => process.stdout.write(JSON.stringify(r)));`;
  const exec = await taskEngine.getContainer(task.Id).exec({ Cmd: ['node', '-e', script], AttachStdout: true, AttachStderr: true, Tty: true });
  const stream = await exec.start({ hijack: true, stdin: false, Tty: true });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise((resolve) => stream.on('end', resolve));
  return JSON.parse(Buffer.concat(chunks).toString('utf8').trim()) as Array<number | string>;
}

/** Where each proxy was told it finds api-backend. */
const toldProxy = new Map<string, string>();

async function main(): Promise<void> {
  const driver = new SwarmDriver({
    image: env('PROXY_IMAGE'),
    scope: env('CTLL_SCOPE'),
    memoryMb: 128,
    cpus: 0.5,
    subnetPool: env('PROXY_SUBNET_POOL'),
    startTimeoutMs: 90_000,
    networkMode: 'container',
    selfContainer: self,
    placement,
    egress: 'none',
    secretFor: (owner) => secrets.secretFor(owner),
    env: (owner, secret, backendAddress) => {
      toldProxy.set(owner, backendAddress);
      return { NODE_ENV: 'production', HOST: '0.0.0.0', PROXY_SECRET: secret, PROXY_USER_HASH: owner, LOG_LEVEL: 'warn' };
    },
    logger: createLogger('error'),
    onExit: () => undefined,
  });
  await driver.start();
  try {
    const handles = [];
    for (const owner of owners) handles.push(await driver.create(owner));
    const hosts = handles.map((handle) => handle.endpoint!.host);
    const internal = await Promise.all(owners.map(async (owner) => (await docker.getNetwork(networkName(owner)).inspect()).Internal as boolean));
    const fromBackend = await healthFrom(hosts);
    const fromTasks = await Promise.all(owners.map((owner) => healthInTask(owner, hosts)));
    const me = docker.getContainer(self ?? os.hostname());
    const joinedAt = (await me.inspect()).NetworkSettings.Networks;
    const addresses = owners.map((owner) => ({ told: toldProxy.get(owner), joined: joinedAt[networkName(owner)]?.IPAddress }));
    const constraints = await Promise.all(
      owners.map(async (owner) => ((await docker.getService(containerName(owner)).inspect()).Spec.TaskTemplate.Placement?.Constraints as string[] | undefined) ?? []),
    );
    const nodes = await Promise.all(owners.map(async (owner) => (await docker.listTasks({ filters: { service: [containerName(owner)], 'desired-state': ['running'] } }))[0]?.NodeID as string));
    const task = Boolean((await me.inspect()).Config.Labels['com.docker.swarm.task.id']);
    for (const owner of owners) await driver.remove(owner);
    const joined = Object.keys((await me.inspect()).NetworkSettings.Networks);
    // The node's anchor, if the driver made one, and the networks it is left on.
    const anchor = await docker
      .getContainer(anchorName(env('CTLL_SCOPE')))
      .inspect()
      .then((info) => Object.keys(info.NetworkSettings.Networks), () => null);
    const result = { task, states: handles.map((h) => h.state), internal, fromBackend, fromTasks, addresses, constraints, nodes, anchor, joinedAfterRemove: joined.filter((n) => n.startsWith('ctll-net-')) };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await driver.close();
  }
}

main().catch((error: Error) => {
  process.stdout.write(`${JSON.stringify({ error: error.message })}\n`);
  process.exitCode = 1;
});
