/**
 * `/api/tunnel/:userId/*`: a web client's request for the user's desktop. Only the user may use
 * their own tunnel (the token's subject must equal `:userId`). The proxy is never started here: no
 * proxy means no desktop, which is a 503 the caller can act on. HTTP is parsed here, once: the
 * request goes on to the proxy as the tunnel's frames over the proxy's frame link, whether a
 * desktop is connected or not (without one, the proxy answers from the user's zrok share or says
 * the desktop is offline).
 */
import { Router, type Request, type Response, type NextFunction } from 'express';
import { BadPathError, DesktopOfflineError, errorMessage, escapesRoot, ForbiddenError } from '@ctll/protocol';
import type { StreamingProxyManager } from '../proxy/manager';
import type { Caller } from '../auth/authenticator';
import { relayFrames } from '../relay/frame-relay';
import type { ProxyLinkPool } from '../relay/proxy-link';
import { reachLink } from '../relay/reach-link';
import { readTunnelHealth } from '../events/tunnel-health';
import type { Metrics } from '../metrics';

export interface TunnelRouteOptions {
  maxBodyBytes: number;
  requestTimeoutMs: number;
  /** The frame links to the proxies. */
  links: ProxyLinkPool;
}

const PREFIX = '/api/tunnel/';

export function tunnelRoutes(
  manager: StreamingProxyManager,
  metrics: Metrics,
  options: TunnelRouteOptions,
): Router {
  const router = Router();

  const ownTunnel = (req: Request, res: Response, next: NextFunction) => {
    const { userId } = res.locals.caller as Caller;
    if (req.params.userId !== userId) return next(new ForbiddenError("this tunnel belongs to another user"));
    next();
  };

  router.get('/api/tunnel/:userId/health', ownTunnel, async (req, res, next) => {
    try {
      res.json(await readTunnelHealth(manager, req.params.userId));
    } catch (error) {
      next(error);
    }
  });

  router.all(['/api/tunnel/:userId', '/api/tunnel/:userId/*'], ownTunnel, async (req, res, next) => {
    try {
      const path = desktopPath(req.originalUrl);
      // Before anything starts: a path that climbs out of the desktop's root never leaves here.
      if (escapesRoot(path)) throw new BadPathError('the path climbs above the root of your desktop (`..` segments are not allowed)');
      const endpoint = await manager.endpoint(req.params.userId);
      if (!endpoint) throw new DesktopOfflineError(errorMessage('desktop_offline'));
      const onUnreachable = () => manager.endpointFailed(req.params.userId);
      const link = await reachLink(options.links, endpoint, onUnreachable);
      metrics.relayRequests.inc();
      relayFrames(req, res, link, path, {
        maxBodyBytes: options.maxBodyBytes,
        silenceTimeoutMs: options.requestTimeoutMs + 10_000,
        onBytes: (direction, bytes) => metrics.relayBytes.inc({ direction }, bytes),
        onUnreachable,
      });
    } catch (error) {
      next(error);
    }
  });

  return router;
}

/** The path and query the desktop asks its server for, from the raw URL (its encoding kept). */
export function desktopPath(originalUrl: string): string {
  const afterPrefix = originalUrl.slice(PREFIX.length);
  const cut = afterPrefix.search(/[/?]/);
  if (cut === -1) return '/';
  const rest = afterPrefix.slice(cut);
  return rest.startsWith('?') ? `/${rest}` : rest;
}
