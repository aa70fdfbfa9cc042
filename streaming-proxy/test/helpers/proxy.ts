/**
 * The real proxy server, in this process, for tests that play the desktop and the caller by hand:
 * a raw `ws` client stands in for a bridge (honest or not), plain http requests for api-backend's
 * control and polling routes. Relayed requests reach the proxy as they do in the relay: through
 * api-backend's own frame relay over a frame link (the edge at `relayUrl`).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROXY_SECRET_HEADER } from '@ctll/protocol';
import { loadConfig } from '../../src/config';
import { openRawDesktop, type RawDesktop } from '../../../tests/helpers/raw-desktop';
import { startFrameEdge } from '../../../tests/helpers/frame-edge';

export type { RawDesktop };
import { createLogger } from '../../src/logger';
import { ProxyStats } from '../../src/stats';
import { TunnelHub } from '../../src/tunnel/hub';
import { Journal } from '../../src/tunnel/journal';
import { createProxyServer } from '../../src/http/server';

export const SECRET = 's'.repeat(40);

export interface TestProxy {
  url: string;
  /** Where a caller's request is relayed from: path and query here are the desktop's. */
  relayUrl: string;
  hub: TunnelHub;
  stats: ProxyStats;
  journal: Journal;
  close(): Promise<void>;
}

export async function startProxy(env: Record<string, string> = {}): Promise<TestProxy> {
  const config = loadConfig({
    PROXY_SECRET: SECRET,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'error',
    // These tests open link after link on purpose: the per-user limits (tested end to end in
    // tests/user-limits.e2e.test.ts) are out of their way unless a test sets its own.
    USER_RATE_PER_MINUTE: '1000000',
    USER_RATE_BURST: '1000000',
    USER_MAX_WS_LINKS: '1000',
    USER_MAX_POLL_LINKS: '1000',
    ...env,
  });
  const logger = createLogger('error', '0123456789abcdef');
  const stats = new ProxyStats();
  const journal = new Journal();
  const hub = new TunnelHub(stats, logger, journal);
  const server = createProxyServer({ config, logger, stats, hub, journal });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const edge = await startFrameEdge({ host: '127.0.0.1', port, secret: SECRET }, Number.MAX_SAFE_INTEGER);
  return {
    url: `http://127.0.0.1:${port}`,
    relayUrl: edge.url,
    hub,
    stats,
    journal,
    close: async () => {
      await edge.close();
      await new Promise<void>((resolve) => {
        hub.closeAll(1001, 'test over');
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}

/** A hand-driven desktop on the proxy's /ws/tunnel. */
export function connectDesktop(proxy: TestProxy, headers: Record<string, string> = {}): Promise<RawDesktop> {
  return openRawDesktop(`${proxy.url.replace('http', 'ws')}/ws/tunnel`, { [PROXY_SECRET_HEADER]: SECRET, ...headers }, 5000);
}

/** A web client's request relayed to the proxy's desktop (through the edge); the response is not read. */
export function callRelay(proxy: TestProxy, path: string, body?: Buffer): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${proxy.relayUrl}${path}`, {
      method: body ? 'POST' : 'GET',
      headers: body ? { 'content-length': body.byteLength } : {},
    });
    req.on('response', resolve);
    req.on('error', reject);
    req.end(body);
  });
}

/** A polling bridge registered by hand, as api-backend would forward it; returns its bridge id. */
export async function registerPoller(proxy: TestProxy, body: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${proxy.url}/bridge/register`, {
    method: 'POST',
    headers: { [PROXY_SECRET_HEADER]: SECRET, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`register answered ${res.status}`);
  return ((await res.json()) as { bridgeId: string }).bridgeId;
}

/**
 * A JSON POST to the proxy as api-backend makes it (its secret, unless `headers` replaces it), read
 * whole: the control routes and the polling bridge's routes.
 */
export function postToProxy(proxy: TestProxy, path: string, headers: Record<string, string> = {}, body = '{}'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${proxy.url}${path}`, {
      method: 'POST',
      headers: { [PROXY_SECRET_HEADER]: SECRET, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
