/**
 * After a relay key is revoked: the links it opened are closed at once, not at their next request.
 * Every link of a user ends at that user's proxy, whichever api-backend replica handed it over, so
 * the replica that revoked the key tells the proxy (by the key's id, never the key) and the proxy
 * closes them (streaming-proxy credentials/key-links.ts). No proxy running: no link to close.
 */
import type { ProxyClient } from '../proxy/proxy-client';
import type { StreamingProxyManager } from '../proxy/manager';
import { userHash } from '../proxy/naming';
import type { Logger } from '../logger';

/** Told of each revoked key; resolves once the proxy closed its links (or could not be asked: logged). */
export type OnKeyRevoked = (userId: string, keyId: string) => Promise<void>;

export function closeLinksOfRevokedKeys(manager: Pick<StreamingProxyManager, 'endpoint'>, client: Pick<ProxyClient, 'keyRevoked'>, logger: Logger): OnKeyRevoked {
  return async (userId, keyId) => {
    const owner = userHash(userId);
    try {
      const endpoint = await manager.endpoint(userId);
      if (!endpoint) return;
      const { closed } = await client.keyRevoked(endpoint, keyId);
      if (closed > 0) logger.info('closed the desktop links of a revoked relay key', { owner, keyId, closed });
    } catch (error) {
      // The key is revoked all the same: its links are refused at their next request or renewal.
      logger.warn('could not tell the proxy to close the links of a revoked relay key', { owner, keyId, error: (error as Error).message });
    }
  };
}
