/**
 * Our side of the bench: the test LLM server, the api-backend and the desktop bridges, each in a
 * process of its own as in production (`node api-backend/dist/main.js`, `node bridge/dist/cli.js`),
 * so the web client never shares an event loop with what it measures and every process's memory
 * can be read from /proc. The api-backend gets the same environment the end-to-end tests use
 * (`relayEnv`), dev auth in a temporary DATA_DIR, and the proxy driver under test.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { relayEnv } from '../../tests/helpers/layout';
import { loadOrCreateDevKeys, signDevToken, type DevKeys } from '../../api-backend/src/auth/dev-keys';
import { agentFor, send, type Route } from './http-client';
import { containerName, userHash } from '../../api-backend/src/proxy/naming';
import { childPids, environOf, forkProcess, freePort, nextMessage, startProcess, type Started } from './procs';
import { sleep, waitUntil } from './measure';

export const ROOT = path.resolve(__dirname, '../../..');
export const BUILD_DIR = __dirname;
export const TMP_DIR = path.join(ROOT, 'bench/.tmp');
export const PROXY_SCRIPT = path.join(ROOT, 'streaming-proxy/dist/streaming-proxy.js');
const API_BACKEND = path.join(ROOT, 'api-backend/dist/main.js');
const BRIDGE_CLI = path.join(ROOT, 'bridge/dist/cli.js');

export type DriverName = 'process' | 'docker' | 'swarm';

export interface LlmProcess {
  url: string;
  port: number;
  proc: Started;
}

export async function startLlm(): Promise<LlmProcess> {
  const proc = forkProcess(path.join(BUILD_DIR, 'llm-server.cjs'), []);
  const message = await nextMessage(proc, (m): m is { type: 'listening'; port: number } => (m as { type?: string })?.type === 'listening', 15_000, 'test LLM server');
  return { url: `http://127.0.0.1:${message.port}`, port: message.port, proc };
}

export function directRoute(llm: LlmProcess): Route {
  return { id: 'direct', kind: 'direct', host: '127.0.0.1', port: llm.port, prefix: '', headers: {} };
}

export interface RelayProcess {
  url: string;
  port: number;
  driver: DriverName;
  dataDir: string;
  proc: Started;
  token(userId: string): string;
  /** Pid of the user's streaming-proxy: its child process, or its container's main process. */
  proxyPid(userId: string): number | undefined;
  close(): Promise<void>;
}

export interface RelayStartOptions {
  driver: DriverName;
  env?: Record<string, string>;
  /** Extra node flags for api-backend (e.g. --cpu-prof). */
  nodeArgs?: string[];
  proxyScript?: string;
  /** Another api-backend bundle (to compare two builds of the product). */
  apiBackend?: string;
  /**
   * A DATA_DIR shared with other replicas (same dev signing keys and proxy secret key); the caller
   * owns it and removes it. Without one, each relay gets a temporary folder of its own.
   */
  dataDir?: string;
}

/** The bench measures the relay's paths and capacity, not the per-user limits: it lifts them out of its way. */
const UNLIMITED = {
  USER_RATE_PER_MINUTE: '100000000',
  USER_RATE_BURST: '100000000',
  USER_MAX_STREAMS: '100000',
  USER_MAX_WS_LINKS: '10000',
  USER_MAX_POLL_LINKS: '10000',
  PROXY_START_RATE_PER_MINUTE: '100000',
  // The most the default subnet pool holds, so the docker driver accepts it too.
  PROXY_MAX: '4096',
  // The bench polls /health from 127.0.0.1 while relays start: the per-address limits are for strangers.
  RATE_LIMIT_ENABLED: 'false',
  // Several relays may run at once (process and docker rows): each takes its own private port.
  METRICS_PORT: '0',
};

export async function startRelayProcess(options: RelayStartOptions): Promise<RelayProcess> {
  fs.mkdirSync(TMP_DIR, { recursive: true });
  const ownDataDir = !options.dataDir;
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-bench-'));
  const port = await freePort();
  const env = {
    ...process.env,
    ...relayEnv(
      {
        PROXY_DRIVER: options.driver,
        PROXY_SCRIPT: options.proxyScript ?? PROXY_SCRIPT,
        LOG_LEVEL: 'error',
        ...UNLIMITED,
        ...options.env,
      },
      dataDir,
      port,
    ),
  };
  const proc = startProcess(process.execPath, [...(options.nodeArgs ?? []), options.apiBackend ?? API_BACKEND], { env, cwd: ROOT });
  const url = `http://127.0.0.1:${port}`;
  const agent = agentFor(1);
  try {
    await waitUntil(
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`api-backend exited (code ${proc.child.exitCode}): ${proc.tail()}`);
        const outcome = await send({ id: 'health', kind: 'relay', host: '127.0.0.1', port, prefix: '', headers: {} }, agent, { method: 'GET', path: '/health', timeoutMs: 2000 });
        return outcome.status > 0 ? true : undefined;
      },
      // The embedded audit database's first start alone can take a minute on a loaded machine.
      120_000,
      'api-backend to answer /health',
      100,
    );
  } catch (error) {
    await proc.stop('SIGKILL');
    if (ownDataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    throw error;
  } finally {
    agent.destroy();
  }
  let keys: DevKeys | undefined;
  const token = (userId: string) => {
    keys ??= loadOrCreateDevKeys(path.join(dataDir, 'dev-auth'));
    return signDevToken(keys, { sub: userId, issuer: 'urn:ctll:dev', audience: 'ctll-relay', expiresInSeconds: 6 * 3600 });
  };
  return {
    url,
    port,
    driver: options.driver,
    dataDir,
    proc,
    token,
    proxyPid: (userId) => {
      const hash = userHash(userId);
      if (options.driver === 'process') return childPids(proc.pid).find((pid) => environOf(pid).PROXY_USER_HASH === hash);
      try {
        const pid = Number(execFileSync('docker', ['inspect', '--format', '{{.State.Pid}}', containerName(hash)], { encoding: 'utf8', timeout: 10_000 }).trim());
        return pid > 0 ? pid : undefined;
      } catch {
        return undefined;
      }
    },
    async close() {
      await proc.stop('SIGTERM', 15_000);
      if (ownDataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function relayRoute(relay: RelayProcess, userId: string, id: string, extraPids: () => Record<string, number> = () => ({})): Route {
  let proxyPidCache: number | undefined;
  return {
    id,
    kind: 'relay',
    host: '127.0.0.1',
    port: relay.port,
    prefix: `/api/tunnel/${encodeURIComponent(userId)}`,
    headers: { authorization: `Bearer ${relay.token(userId)}` },
    pids: () => {
      const pids: Record<string, number> = { 'api-backend': relay.proc.pid, ...extraPids() };
      const proxy = (proxyPidCache ??= relay.proxyPid(userId));
      if (proxy) pids['streaming-proxy'] = proxy;
      return pids;
    },
  };
}

/** Asks the relay whether the user's desktop is connected, and by which transport. */
export async function tunnelHealth(relay: RelayProcess, userId: string): Promise<{ connected: boolean; transport: string | null; proxy?: string } | undefined> {
  const agent = agentFor(1);
  try {
    let body = '';
    const outcome = await send(
      { id: 'health', kind: 'relay', host: '127.0.0.1', port: relay.port, prefix: '', headers: { authorization: `Bearer ${relay.token(userId)}` } },
      agent,
      { method: 'GET', path: `/api/tunnel/${encodeURIComponent(userId)}/health`, timeoutMs: 5000, onChunk: (chunk) => (body += chunk.toString('utf8')) },
    );
    if (outcome.status !== 200) return undefined;
    return JSON.parse(body) as { connected: boolean; transport: string | null; proxy?: string };
  } finally {
    agent.destroy();
  }
}

export interface BridgeProcess {
  proc: Started;
  close(): Promise<void>;
}

/** Starts `node bridge/dist/cli.js` for the user and waits until the relay sees it connected. */
export async function startBridgeProcess(relay: RelayProcess, userId: string, target: string, transport: string, nodeArgs: string[] = [], cli = BRIDGE_CLI): Promise<BridgeProcess> {
  const proc = startProcess(
    process.execPath,
    [...nodeArgs, cli, '--server', relay.url, '--token', relay.token(userId), '--target', target, '--transport', transport, '--quiet'],
    { cwd: ROOT, env: { ...process.env, NO_PROXY: '*' } },
  );
  try {
    await waitUntil(
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`bridge exited (code ${proc.child.exitCode}): ${proc.tail()}`);
        const health = await tunnelHealth(relay, userId);
        return health?.connected && health.transport === transport ? true : undefined;
      },
      30_000,
      `the ${transport} bridge to connect`,
      100,
    );
  } catch (error) {
    await proc.stop('SIGKILL');
    throw error;
  }
  return {
    proc,
    async close() {
      await proc.stop('SIGTERM', 5000);
      await sleep(50);
    },
  };
}

export interface Fleet {
  proc: Started;
  connected: number;
  failed: number;
  errors: string[];
  ms: number;
  close(): Promise<void>;
}

/**
 * Starts many bridges in one process (children/bridge-fleet.ts) and waits until all tried. They
 * dial `server` (default the relay itself; e.g. nginx in front of replicas), trusting `caFile` too.
 */
export async function startFleet(
  relay: RelayProcess,
  tokens: string[],
  target: string,
  transport: string,
  concurrency: number,
  via: { server?: string; caFile?: string; wholeFrames?: boolean } = {},
): Promise<Fleet> {
  const spec = { server: via.server ?? relay.url, target, transport, tokens, concurrency, wholeFrames: via.wholeFrames };
  const env = { ...process.env, NO_PROXY: '*', ...(via.caFile ? { NODE_EXTRA_CA_CERTS: via.caFile } : {}) };
  const proc = forkProcess(path.join(BUILD_DIR, 'bridge-fleet.cjs'), [JSON.stringify(spec)], { env });
  const ready = await nextMessage(
    proc,
    (m): m is { type: 'ready'; connected: number; failed: number; errors: string[]; ms: number } => (m as { type?: string })?.type === 'ready',
    60_000 + tokens.length * 2000,
    'bridge fleet',
  );
  return {
    proc,
    ...ready,
    async close() {
      if (proc.child.connected) proc.child.send('close');
      await Promise.race([proc.exited, sleep(8000)]);
      await proc.stop('SIGKILL');
    },
  };
}
