/**
 * One helper builds the whole picture for an end-to-end test: the real api-backend (its own
 * composition root, on 127.0.0.1 port 0, dev auth with a key in a temp DATA_DIR), the real
 * streaming-proxy (through the configured driver), the slow Ollama-compatible test server, and
 * real bridges dialling in. Parameterised by driver and transport, so each scenario is a few lines
 * and runs against every combination. `close()` tears down everything it started.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startRelay, type Relay } from '../../api-backend/src/app';
import { loadConfig } from '../../api-backend/src/config';
import { createLogger } from '../../api-backend/src/logger';
import { signDevToken } from '../../api-backend/src/auth/dev-keys';
import { startBridge, type Bridge } from '../../bridge/src';
import { startLlmServer, type LlmServer, type LlmServerOptions } from './llm-server';
import { seedPglite } from './pglite-template';

export const PROXY_SCRIPT = path.resolve(__dirname, '../../streaming-proxy/dist/streaming-proxy.js');

export type Transport = 'ws' | 'poll';
export type DriverName = 'process' | 'docker';

export interface LayoutOptions {
  driver?: DriverName;
  transport?: Transport;
  /** Extra api-backend environment (REQUEST_TIMEOUT_MS, MAX_BODY_BYTES, ...). */
  env?: Record<string, string>;
  llm?: LlmServerOptions;
}

export interface Layout {
  relay: Relay;
  llm: LlmServer;
  dataDir: string;
  transport: Transport;
  /** A dev-issuer token for the user, with any extra claims (e.g. an operator's role). */
  token(userId: string, claims?: object): string;
  /** Base URL an Ollama client uses for the user's desktop. */
  tunnelUrl(userId: string): string;
  /** Starts a bridge for the user against the test LLM server and waits until it is connected. */
  connectBridge(userId: string, options?: { target?: string; transport?: Transport }): Promise<Bridge>;
  fetchAs(userId: string, pathname: string, init?: RequestInit): Promise<Response>;
  /** Stops the relay and starts it again on the same port and data directory. */
  restartRelay(): Promise<void>;
  close(): Promise<void>;
}

export function relayEnv(layoutEnv: Record<string, string>, dataDir: string, port = 0): Record<string, string> {
  return {
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: dataDir,
    LOG_LEVEL: process.env.CTLL_TEST_LOG_LEVEL ?? 'error',
    PROXY_SCRIPT,
    // Any free port for the private listener (relay.metricsUrl), so relays in parallel never collide.
    METRICS_PORT: '0',
    // Every test client is 127.0.0.1 and waitFor polls every 25 ms: the per-address limits are
    // off unless a test turns them on (tests/edge-limits.e2e.test.ts does).
    RATE_LIMIT_ENABLED: 'false',
    ...layoutEnv,
  };
}

export async function startLayout(options: LayoutOptions = {}): Promise<Layout> {
  const driver = options.driver ?? 'process';
  const transport = options.transport ?? 'ws';
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-e2e-'));
  // Docker resources carry a scope label: this run touches only its own containers and networks.
  const dockerEnv: Record<string, string> = driver === 'docker' ? { PROXY_SCOPE: `test-${randomBytes(4).toString('hex')}`, PROXY_MEMORY_MB: '128' } : {};
  const env: Record<string, string> = { PROXY_DRIVER: driver, ...dockerEnv, ...(options.env ?? {}) };
  const logger = createLogger(process.env.CTLL_TEST_LOG_LEVEL ?? 'error');
  const llm = await startLlmServer(options.llm);
  if (!env.DATABASE_URL) await seedPglite(dataDir);
  let relay = await startRelay(loadConfig(relayEnv(env, dataDir), { proxyScript: PROXY_SCRIPT }), logger);
  const bridges: Bridge[] = [];

  const token = (userId: string, claims?: object) =>
    signDevToken(relay.devKeys!, { sub: userId, issuer: 'urn:ctll:dev', audience: 'ctll-relay', expiresInSeconds: 3600 }, claims);

  const layout: Layout = {
    get relay() {
      return relay;
    },
    llm,
    dataDir,
    transport,
    token,
    tunnelUrl: (userId) => `${relay.url}/api/tunnel/${encodeURIComponent(userId)}`,
    async connectBridge(userId, bridgeOptions = {}) {
      const bridge = startBridge({
        server: relay.url,
        token: token(userId),
        target: bridgeOptions.target ?? llm.url,
        transport: bridgeOptions.transport ?? transport,
      });
      bridges.push(bridge);
      await bridge.waitConnected(15_000);
      return bridge;
    },
    fetchAs(userId, pathname, init = {}) {
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${token(userId)}`);
      return fetch(`${layout.tunnelUrl(userId)}${pathname}`, { ...init, headers });
    },
    async restartRelay() {
      const port = relay.port;
      await relay.close();
      relay = await startRelay(loadConfig(relayEnv(env, dataDir, port), { proxyScript: PROXY_SCRIPT }), logger);
    },
    async close() {
      await Promise.all(bridges.map((bridge) => bridge.close()));
      await relay.close();
      // A shutdown leaves docker proxies running for the next api-backend; this one has no next.
      if (driver === 'docker') await (await import('../docker/support')).removeScope(env.PROXY_SCOPE);
      await llm.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return layout;
}

/** Reads a streamed body chunk by chunk, recording when each chunk arrived. */
export async function readChunks(response: Response): Promise<Array<{ at: number; text: string }>> {
  const chunks: Array<{ at: number; text: string }> = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return chunks;
    chunks.push({ at: Date.now(), text: decoder.decode(value, { stream: true }) });
  }
}

export function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const began = Date.now();
  return new Promise((resolve, reject) => {
    const check = async () => {
      if (await condition()) return resolve();
      if (Date.now() - began > timeoutMs) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(check, 25);
    };
    void check();
  });
}
