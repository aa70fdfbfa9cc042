/**
 * The proxy's frame link for a request that needs it: a link that cannot be opened is the proxy
 * being unreachable, which the caller hears as 503 proxy_unreachable and the manager as a failed
 * endpoint (so the next request looks the proxy up again).
 */
import { ServiceUnavailableError } from '@ctll/protocol';
import type { ProxyEndpoint } from '../proxy/driver';
import type { ProxyLink, ProxyLinkPool } from './proxy-link';

export async function reachLink(links: ProxyLinkPool, endpoint: ProxyEndpoint, onUnreachable: () => void): Promise<ProxyLink> {
  try {
    return await links.get(endpoint);
  } catch (error) {
    onUnreachable();
    throw new ServiceUnavailableError(`your streaming proxy's frame link did not open: ${(error as Error).message}`, 'proxy_unreachable', {
      publicMessage: 'your streaming proxy is not reachable right now; try again in a moment',
    });
  }
}
