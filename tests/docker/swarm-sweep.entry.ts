/**
 * One of two api-backend replicas: the two tasks of one replicated service (slots 1 and 2, as a
 * stack runs them), one on each node, for the stop that leaves a user's overlay held on another
 * node and that node's sweep, which removes it (swarm-nodes-sweep.test.ts bundles and runs it).
 * - The starter, on node CTLL_STARTER_NODE: starts the user's proxy, waits until the other replica
 *   has reached it, then stops it. The stop takes this node's replicas and anchor off the overlay
 *   and removes the service; the overlay it must leave, since the other node's replica and anchor
 *   still hold it.
 * - The joiner, on the other node: looks the proxy up, as a replica does for a request through it
 *   (which joins the overlay through this node's anchor), reaches it, and after the stop runs one
 *   sweep, which finds the overlay without a proxy, takes itself and then its anchor off, and
 *   removes it.
 * The joiner is up (its start-up reconcile done) before the starter starts the proxy, as a
 * long-running replica is. The two meet through files in CTLL_SIGNALS, a directory bound into both
 * tasks. Each prints one JSON line of what it saw.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { SwarmDriver } from '../../api-backend/src/proxy/swarm-driver';
import { createLogger } from '../../api-backend/src/logger';
import { ProxySecrets } from '../../api-backend/src/proxy/proxy-secrets';
import { networkName } from '../../api-backend/src/proxy/naming';
import { anchorName } from '../../api-backend/src/proxy/swarm-anchor';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const docker = new Docker();
const owner = env('CTLL_OWNER');
const scope = env('CTLL_SCOPE');
const signals = env('CTLL_SIGNALS');
const secrets = new ProxySecrets(randomBytes(32));

/** Tells the other replica a step is done, with what it needs to know. */
function signal(step: string, detail: unknown = {}): void {
  fs.writeFileSync(path.join(signals, `${step}.tmp`), JSON.stringify(detail));
  fs.renameSync(path.join(signals, `${step}.tmp`), path.join(signals, step));
}

/** Waits for the other replica's step (or its failure, which ends this one too). */
async function awaitSignal(step: string): Promise<unknown> {
  const deadline = Date.now() + 200_000;
  for (;;) {
    if (fs.existsSync(path.join(signals, 'failed'))) throw new Error(`the other replica failed: ${fs.readFileSync(path.join(signals, 'failed'), 'utf8')}`);
    if (fs.existsSync(path.join(signals, step))) return JSON.parse(fs.readFileSync(path.join(signals, step), 'utf8'));
    if (Date.now() > deadline) throw new Error(`no "${step}" from the other replica within 200 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The user networks this container and this node's anchor are on. */
async function attachments(): Promise<{ replica: string[]; anchor: string[] | null }> {
  const replica = Object.keys((await docker.getContainer(os.hostname()).inspect()).NetworkSettings.Networks).filter((n) => n.startsWith('ctll-net-'));
  const anchor = await docker
    .getContainer(anchorName(scope))
    .inspect()
    .then((info) => Object.keys(info.NetworkSettings.Networks), () => null);
  return { replica, anchor };
}

/** Whether the manager still has the user's overlay. */
async function overlayExists(): Promise<boolean> {
  return (await docker.listNetworks({ filters: { name: [networkName(owner)] } })).some((n) => n.Name === networkName(owner));
}

function makeDriver(): SwarmDriver {
  return new SwarmDriver({
    image: env('PROXY_IMAGE'),
    scope,
    memoryMb: 128,
    cpus: 0.5,
    subnetPool: env('PROXY_SUBNET_POOL'),
    startTimeoutMs: 90_000,
    networkMode: 'container',
    placement: process.env.CTLL_PLACEMENT ? [process.env.CTLL_PLACEMENT] : undefined,
    egress: 'none',
    // The joiner's sweep runs when the test says; an overlay a second old without a proxy is half-made.
    sweepIntervalMs: 3_600_000,
    halfMadeAfterMs: 1_000,
    secretFor: (ownerHash) => secrets.secretFor(ownerHash),
    env: (ownerHash, secret) => ({ NODE_ENV: 'production', HOST: '0.0.0.0', PROXY_SECRET: secret, PROXY_USER_HASH: ownerHash, LOG_LEVEL: 'warn' }),
    logger: createLogger('error'),
    onExit: () => undefined,
  });
}

async function starter(driver: SwarmDriver): Promise<Record<string, unknown>> {
  // The joiner's start-up reconcile is over: with its short half-made age it would take a start in flight for debris.
  await awaitSignal('ready');
  const handle = await driver.create(owner);
  signal('started');
  await awaitSignal('joined');
  await driver.remove(owner);
  const after = await attachments();
  const held = await overlayExists();
  signal('stopped');
  return { role: 'starter', state: handle.state, heldAfterStop: held, afterStop: after };
}

async function joiner(driver: SwarmDriver): Promise<Record<string, unknown>> {
  signal('ready');
  await awaitSignal('started');
  const handle = await driver.inspect(owner);
  const health = handle?.endpoint
    ? await fetch(`http://${handle.endpoint.host}:${handle.endpoint.port}/health`, { signal: AbortSignal.timeout(5000) }).then(
        (res) => res.status,
        (error: { cause?: { code?: string }; name: string }) => error.cause?.code ?? error.name,
      )
    : 'no endpoint';
  const joined = await attachments();
  signal('joined');
  await awaitSignal('stopped');
  const beforeSweep = await overlayExists();
  await driver.reconcile();
  return { role: 'joiner', state: handle?.state, health, joined, overlayBeforeSweep: beforeSweep, overlayAfterSweep: await overlayExists(), afterSweep: await attachments() };
}

async function main(): Promise<void> {
  const driver = makeDriver();
  await driver.start();
  try {
    const onStarterNode = ((await docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID === env('CTLL_STARTER_NODE');
    const result = onStarterNode ? await starter(driver) : await joiner(driver);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await driver.close();
  }
}

main().catch((error: Error) => {
  try {
    signal('failed', error.message);
  } catch {
    // the directory is gone: the test ended already
  }
  process.stdout.write(`${JSON.stringify({ error: error.message })}\n`);
  process.exitCode = 1;
});
