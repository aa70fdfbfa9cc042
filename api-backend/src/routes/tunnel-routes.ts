/**
 * `/api/tunnel/:userId/*`: a web client's request for the user's desktop. Only the user may use
 * their own tunnel (the token's subject must equal `:userId`). The proxy is never started here: no
 * proxy means no desktop, which is a 503 the caller can act on.
 */
import { Router, type Request, type Response, type NextFunction } from 'express';
import { BadPathError, DesktopOfflineError, errorMessage, escapesRoot, ForbiddenError, type TargetHealth } from '@ctll/protocol';
import type { StreamingProxyManager } from '../proxy/manager';
import type { ProxyClient } from '../proxy/proxy-client';
import type { Caller } from '../auth/authenticator';
import { relayHttp } from '../relay/http-relay';
import type { Metrics } from '../metrics';

export interface TunnelRouteOptions {
  maxBodyBytes: number;
  requestTimeoutMs: number;
}

const PREFIX = '/api/tunnel/';

export function tunnelRoutes(
  manager: StreamingProxyManager,
  client: ProxyClient,
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
      const status = await manager.status(req.params.userId);
      const connected = status.desktop?.connected ?? false;
      res.json({
        // "Your PC is offline" versus "your PC is online but its model server is not running".
        desktop: connected ? 'online' : 'offline',
        ...targetsHealth(connected ? status.desktop?.target : undefined),
        connected,
        transport: status.desktop?.transport ?? null,
        proxy: status.status,
        activeRequests: status.activeRequests ?? 0,
      });
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
      relayHttp(req, res, endpoint, `/relay${path}`, client, {
        maxBodyBytes: options.maxBodyBytes,
        socketTimeoutMs: options.requestTimeoutMs + 10_000,
        onBytes: (direction, bytes) => metrics.relayBytes.inc({ direction }, bytes),
        onDone: () => undefined,
        onUnreachable: () => manager.endpointFailed(req.params.userId),
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

/**
 * `target`: the default (unnamed) target, shaped as before there were several; `targets`: every
 * target, the default first with `name: null`, then each `--target name=url` the bridge reported.
 */
function targetsHealth(report: TargetHealth | null | undefined): { target: Omit<TargetHealth, 'targets'> | null; targets: Array<Record<string, unknown>> } {
  if (!report) return { target: null, targets: [] };
  const { targets: named = [], ...target } = report;
  return { target, targets: [{ name: null, ...target }, ...named.map((one) => ({ ...one, checkedAt: target.checkedAt }))] };
}
