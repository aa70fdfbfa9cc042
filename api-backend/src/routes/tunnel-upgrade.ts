/**
 * `GET /ws/tunnel` (upgrade): a desktop bridge dialling in. The caller's address is held to its
 * per-address limits first (429 on the raw socket), then the token is checked before anything else
 * happens (a bad one gets a 401 on the raw socket, counted against the address, and never a
 * WebSocket); then the user's proxy is started if needed and the connection is handed to it,
 * told when the token expires: the proxy closes the tunnel if it is not renewed in time. A child
 * proxy (process driver) is sent the desktop's socket itself; a container's proxy gets the upgrade
 * relayed to its port and the two sockets spliced here.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { checkProtocolVersion, NotFoundError, PROTOCOL_VERSION_HEADER, RELAY_INSTANCE_HEADER, RelayError, UnauthorizedError } from '@ctll/protocol';
import type { ProxyEndpoint } from '../proxy/driver';
import type { Authenticator } from '../auth/authenticator';
import { credentialHeaders } from '../auth/credential-headers';
import type { IpLimits } from '../http/ip-limits';
import type { StreamingProxyManager } from '../proxy/manager';
import { proxyUpgradeHeaders, relayUpgrade, rejectUpgradeWith } from '../relay/upgrade-relay';
import type { TunnelEnd } from '../proxy/tunnel-handoffs';
import type { Metrics } from '../metrics';
import type { Logger } from '../logger';
import { userHash } from '../proxy/naming';

export const TUNNEL_PATH = '/ws/tunnel';

export function tunnelUpgradeHandler(deps: {
  auth: Authenticator;
  manager: StreamingProxyManager;
  metrics: Metrics;
  logger: Logger;
  limits: IpLimits;
  /** The caller's address as Express's req.ip gives it (TRUST_PROXY applied). */
  clientAddress: (req: IncomingMessage) => string;
  /** A desktop's tunnel opened or closed at this owner's proxy (the audit reads its journal soon). */
  onActivity?: (ownerHash: string) => void;
  /** Told of each desktop tunnel a proxy (at `endpoint`) accepted, so the shutdown can end it after the drain. */
  onTunnel?: (tunnel: TunnelEnd, endpoint: ProxyEndpoint) => void;
  /** This process's id for the proxy (RELAY_INSTANCE_HEADER): a drain of this replica closes only its own tunnels. */
  relayInstance?: string;
}) {
  const { auth, manager, metrics, logger, limits, clientAddress, onActivity } = deps;
  return async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on('error', () => socket.destroy());
    const pathname = (req.url ?? '/').split('?')[0];
    if (pathname !== TUNNEL_PATH) {
      rejectUpgradeWith(socket, new NotFoundError(`no WebSocket endpoint at ${pathname}`));
      return;
    }
    try {
      const address = clientAddress(req);
      await limits.checkAuthFailures(address);
      await limits.take('upgrades', address);
      // Before the token: a bridge too old or too new is told what to upgrade, whatever its token.
      checkProtocolVersion(req.headers[PROTOCOL_VERSION_HEADER]);
      const caller = await auth.authenticate(req).catch((error: unknown) => {
        if (error instanceof UnauthorizedError) void limits.recordAuthFailure(address);
        throw error;
      });
      const { userId } = caller;
      const { handle } = await manager.ensure(userId);
      if (!handle.endpoint) throw new Error('proxy has no endpoint');
      const { endpoint } = handle;
      const ownerHash = userHash(userId);
      const headers = proxyUpgradeHeaders(req, endpoint, {
        ...credentialHeaders(caller),
        ...(deps.relayInstance ? { [RELAY_INSTANCE_HEADER]: deps.relayInstance } : {}),
      });
      // Counted once the proxy accepted it: an upgrade still waiting for the proxy, or refused
      // by it, is not a tunnel (nor, when its socket closes, a tunnel closing).
      const accepted = (tunnel: TunnelEnd) => {
        deps.onTunnel?.(tunnel, endpoint);
        metrics.tunnelUpgrades.inc({ result: 'accepted' });
        onActivity?.(ownerHash);
        tunnel.once('close', () => onActivity?.(ownerHash));
      };
      const refused = (status: number, code: string, message: string) => {
        const limited = status === 429;
        metrics.tunnelUpgrades.inc({ result: limited ? code : 'proxy_failed' });
        if (!limited) logger.warn('tunnel upgrade failed at the StreamingProxy', { owner: ownerHash, status, message });
      };
      const failed = (failure: RelayError) => {
        refused(failure.status, failure.code, failure.message);
        rejectUpgradeWith(socket, failure);
      };
      // A child proxy is handed the desktop's socket itself; any other is relayed to its endpoint.
      const handedOff = manager.driver.handOffTunnel?.(ownerHash, socket, headers, head, {
        accepted,
        refused: (status, code) => refused(status, code, `the StreamingProxy refused the tunnel (${code})`),
        failed,
      });
      if (!handedOff) relayUpgrade(socket, head, endpoint, headers, { onSpliced: () => accepted(socket), onFailure: failed });
    } catch (error) {
      const relayError = error instanceof RelayError ? error : undefined;
      metrics.tunnelUpgrades.inc({ result: relayError ? relayError.code : 'error' });
      if (!relayError) logger.error('tunnel upgrade failed', { error: (error as Error).message });
      else if (relayError.status >= 500) logger.warn('tunnel upgrade refused', { code: relayError.code, detail: relayError.message });
      rejectUpgradeWith(socket, error);
    }
  };
}
