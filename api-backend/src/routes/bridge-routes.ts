/**
 * The long-poll transport for desktops behind networks that block WebSockets.
 * api-backend authenticates and routes; the user's proxy holds the queue. A bridge id lives in its
 * owner's proxy only, so another user asking for it reaches their own proxy and gets 404.
 *
 * Each call (register, poll, heartbeat, respond, answers) is parsed here, once, and goes on to the proxy as
 * a stream of its frame link marked as a bridge call (BRIDGE_CALL_HEADER), the way a web client's
 * request does (relay/frame-relay.ts). A proxy of an older release, whose hello does not offer
 * bridge calls, gets them as HTTP requests instead (relay/http-relay.ts) until it is replaced.
 */
import { Router, type Request, type Response, type NextFunction } from 'express';
import { BRIDGE_CALL_HEADER, checkProtocolVersion, errorMessage, MAX_ANSWER_BATCH_BYTES, PROTOCOL_VERSION_HEADER, UnknownBridgeError } from '@ctll/protocol';
import type { StreamingProxyManager } from '../proxy/manager';
import type { ProxyEndpoint } from '../proxy/driver';
import type { ProxyClient } from '../proxy/proxy-client';
import type { Caller } from '../auth/authenticator';
import { relayHttp } from '../relay/http-relay';
import { relayFrames } from '../relay/frame-relay';
import type { ProxyLinkPool } from '../relay/proxy-link';
import { reachLink } from '../relay/reach-link';
import { credentialHeaders } from '../auth/credential-headers';
import type { Metrics } from '../metrics';

export interface BridgeRouteOptions {
  pollTimeoutMs: number;
  requestTimeoutMs: number;
  /** The frame links to the proxies. */
  links: ProxyLinkPool;
}

/** Registration bodies are tiny; answers (`respond`) stream and are bounded only by the web client's patience. */
const REGISTER_MAX_BYTES = 64 * 1024;

export function bridgeRoutes(manager: StreamingProxyManager, client: ProxyClient, metrics: Metrics, options: BridgeRouteOptions): Router {
  const router = Router();
  // A poll waits at the proxy for up to its timeout: that is not the proxy's silence.
  const silenceTimeoutMs = Math.max(options.pollTimeoutMs, options.requestTimeoutMs) + 10_000;
  // The bridge's answer bytes go down to the web client, its poll answers' bytes up from it.
  const onBytes = (direction: 'up' | 'down', bytes: number) => metrics.relayBytes.inc({ direction: direction === 'up' ? 'down' : 'up' }, bytes);

  /** One call on to the proxy; each carries the bridge's current token, whose expiry moves the link's deadline there. */
  const relay = async (req: Request, res: Response, endpoint: ProxyEndpoint, path: string, maxBodyBytes: number) => {
    const caller = res.locals.caller as Caller;
    const onUnreachable = () => manager.endpointFailed(caller.userId);
    const link = await reachLink(options.links, endpoint, onUnreachable);
    if (link.acceptsBridgeCalls) {
      relayFrames(req, res, link, path, {
        maxBodyBytes,
        silenceTimeoutMs,
        onBytes,
        onUnreachable,
        internalHeaders: { ...credentialHeaders(caller), [BRIDGE_CALL_HEADER]: '1' },
      });
      return;
    }
    relayHttp(req, res, endpoint, path, client, {
      maxBodyBytes,
      socketTimeoutMs: silenceTimeoutMs,
      onBytes,
      onUnreachable,
      internalHeaders: credentialHeaders(caller),
    });
  };

  router.post('/api/bridge/register', async (req, res, next) => {
    try {
      checkProtocolVersion(req.headers[PROTOCOL_VERSION_HEADER]);
      const caller = res.locals.caller as Caller;
      const { handle } = await manager.ensure(caller.userId);
      await relay(req, res, handle.endpoint!, '/bridge/register', REGISTER_MAX_BYTES);
    } catch (error) {
      next(error);
    }
  });

  const forward = (maxBodyBytes: number) => async (req: Request, res: Response, next: NextFunction) => {
    try {
      const caller = res.locals.caller as Caller;
      const endpoint = await manager.endpoint(caller.userId);
      if (!endpoint) throw new UnknownBridgeError(errorMessage('unknown_bridge'));
      await relay(req, res, endpoint, req.originalUrl.replace(/^\/api/, '').split('?')[0], maxBodyBytes);
    } catch (error) {
      next(error);
    }
  };

  router.get('/api/bridge/poll/:bridgeId', forward(0));
  router.post('/api/bridge/heartbeat/:bridgeId', forward(REGISTER_MAX_BYTES));
  router.post('/api/bridge/respond/:bridgeId/:requestId', forward(Number.MAX_SAFE_INTEGER));
  router.post('/api/bridge/answers/:bridgeId', forward(MAX_ANSWER_BATCH_BYTES));
  return router;
}
