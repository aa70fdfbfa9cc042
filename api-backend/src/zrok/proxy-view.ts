/**
 * What the user's proxy has seen of a share. The proxy is the only one that connects to shares,
 * so reachability is its observation, read from its `/status` or from `POST /zrok/refresh`, which
 * makes it pull the registry and check every share right away (used when a share registers, so
 * the proxy knows it before the desktop's register call returns).
 */
import { parseProxyAnswer, zrokRefreshAnswerSchema, type ProxyZrokStatus } from '@ctll/protocol';
import type { ProxyEndpoint } from '../proxy/driver';
import type { ProxyClient } from '../proxy/proxy-client';

/**
 * What the share's owner is told. `reachability` says unreachable, never why: the proxy's low-level
 * failure (a refused connection, a timeout) would let a caller map ports and hosts behind any URL
 * it managed to register. The proxy logs the reason on its side.
 */
export interface ShareObservation {
  reachable: boolean | null;
  reachability: 'reachable' | 'unreachable' | 'unknown';
  checkedAt: string | null;
  inUse: boolean;
}

/** Its health checks can take a few seconds; past this, the answer is "not known yet". */
const REFRESH_TIMEOUT_MS = 12_000;

export function observe(zrok: ProxyZrokStatus | null | undefined, tunnelId: string): ShareObservation {
  const share = zrok?.shares.find((entry) => entry.shareId === tunnelId);
  const reachable = share?.healthy ?? null;
  return {
    reachable,
    reachability: reachable === null ? 'unknown' : reachable ? 'reachable' : 'unreachable',
    checkedAt: share?.checkedAt ?? null,
    inUse: zrok?.inUse === tunnelId,
  };
}

export async function currentView(client: ProxyClient, endpoint: ProxyEndpoint): Promise<ProxyZrokStatus | null> {
  const status = await client.status(endpoint).catch(() => undefined);
  return status?.zrok ?? null;
}

/** Asks the proxy to look now; resolves null if it cannot say (old proxy, timeout, error). */
export function refreshView(client: ProxyClient, endpoint: ProxyEndpoint): Promise<ProxyZrokStatus | null> {
  return new Promise((resolve) => {
    const req = client.request(endpoint, { method: 'POST', path: '/zrok/refresh', timeout: REFRESH_TIMEOUT_MS });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', () => resolve(null));
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve(null);
        try {
          resolve(parseProxyAnswer(zrokRefreshAnswerSchema, 'zrok/refresh', Buffer.concat(chunks).toString('utf8')).zrok);
        } catch {
          resolve(null);
        }
      });
    });
    req.end();
  });
}
