/**
 * The long-poll transport for desktops behind networks that block WebSockets.
 * api-backend authenticates and routes; the user's proxy holds the queue. A bridge id lives in its
 * owner's proxy only, so another user asking for it reaches their own proxy and gets 404.
 */
import { Router, type Request, type Response, type NextFunction } from 'express';
import { checkProtocolVersion, errorMessage, PROTOCOL_VERSION_HEADER, UnknownBridgeError } from '@ctll/protocol';
import type { StreamingProxyManager } from '../proxy/manager';
import type { ProxyClient } from '../proxy/proxy-client';
import type { Caller } from '../auth/authenticator';
import { relayHttp } from '../relay/http-relay';
import { credentialHeaders } from '../auth/credential-headers';
import type { Metrics } from '../metrics';

export interface BridgeRouteOptions {
  pollTimeoutMs: number;
  requestTimeoutMs: number;
}

/** Registration bodies are tiny; answers (`respond`) stream and are bounded only by the web client's patience. */
const REGISTER_MAX_BYTES = 64 * 1024;

export function bridgeRoutes(manager: StreamingProxyManager, client: ProxyClient, metrics: Metrics, options: BridgeRouteOptions): Router {
  const router = Router();
  const socketTimeoutMs = Math.max(options.pollTimeoutMs, options.requestTimeoutMs) + 10_000;
  // Each request carries the bridge's current token: its expiry moves the link's deadline at the proxy.
  const relayOptions = (maxBodyBytes: number, caller: Caller) => ({
    maxBodyBytes,
    socketTimeoutMs,
    onBytes: (direction: 'up' | 'down', bytes: number) => metrics.relayBytes.inc({ direction: direction === 'up' ? 'down' : 'up' }, bytes),
    onDone: () => undefined,
    onUnreachable: () => manager.endpointFailed(caller.userId),
    internalHeaders: credentialHeaders(caller),
  });

  router.post('/api/bridge/register', async (req, res, next) => {
    try {
      checkProtocolVersion(req.headers[PROTOCOL_VERSION_HEADER]);
      const caller = res.locals.caller as Caller;
      const { handle } = await manager.ensure(caller.userId);
      relayHttp(req, res, handle.endpoint!, '/bridge/register', client, relayOptions(REGISTER_MAX_BYTES, caller));
    } catch (error) {
      next(error);
    }
  });

  const forward = (maxBodyBytes: number) => async (req: Request, res: Response, next: NextFunction) => {
    try {
      const caller = res.locals.caller as Caller;
      const endpoint = await manager.endpoint(caller.userId);
      if (!endpoint) throw new UnknownBridgeError(errorMessage('unknown_bridge'));
      const upstreamPath = req.originalUrl.replace(/^\/api/, '').split('?')[0];
      relayHttp(req, res, endpoint, upstreamPath, client, relayOptions(maxBodyBytes, caller));
    } catch (error) {
      next(error);
    }
  };

  router.get('/api/bridge/poll/:bridgeId', forward(0));
  router.post('/api/bridge/heartbeat/:bridgeId', forward(REGISTER_MAX_BYTES));
  router.post('/api/bridge/respond/:bridgeId/:requestId', forward(Number.MAX_SAFE_INTEGER));
  return router;
}
