/**
 * Is a share answering? One GET of the share's base URL: any HTTP answer below 500 means the
 * share and whatever serves behind it are up (Ollama answers "Ollama is running"; other servers
 * may answer 404 at `/`, which still proves they are there). A 5xx, a refused connection, a
 * refused address or silence past the timeout means not healthy.
 */
import { ShareAddressError } from './guard';
import type { ShareClient } from './share-client';

export interface HealthResult {
  healthy: boolean;
  /** Why not, for status and logs (never the share's URL: it embeds the share token). */
  error?: string;
}

export function checkShare(client: ShareClient, share: URL, timeoutMs: number): Promise<HealthResult> {
  return new Promise((resolve) => {
    let req: ReturnType<ShareClient['request']>;
    try {
      req = client.request(share, { method: 'GET', path: '/', headers: { 'user-agent': 'ctll-streaming-proxy (zrok health check)' } });
    } catch (error) {
      resolve({ healthy: false, error: (error as Error).message });
      return;
    }
    let settled = false;
    const settle = (result: HealthResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => {
      settle({ healthy: false, error: `no answer within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (error: NodeJS.ErrnoException) => settle({ healthy: false, error: describeFailure(error) }));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      settle(status < 500 ? { healthy: true } : { healthy: false, error: `answered ${status}` });
      // Read the (small) body to its end so the socket goes back to the pool.
      res.resume();
    });
    req.end();
  });
}

/** A refused address explains itself; a socket error is best known by its code (ECONNREFUSED). */
export function describeFailure(error: NodeJS.ErrnoException): string {
  return error instanceof ShareAddressError ? error.message : (error.code ?? error.message);
}
