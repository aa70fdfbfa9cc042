/**
 * The caller about themselves, for the web console:
 *   GET /api/me        who the relay takes the caller to be: user id, owner hash, operator or not
 *   GET /api/me/usage  requests and bytes today and per minute over the last hour
 * Usage is counted by the user's own proxy, the one place every api-backend replica's traffic for
 * that user passes; it is read, never started, here: with no proxy there is nothing counted.
 */
import { Router } from 'express';
import { ServiceUnavailableError, type Me, type MeUsage } from '@ctll/protocol';
import type { Caller } from '../auth/authenticator';
import type { StreamingProxyManager } from '../proxy/manager';
import type { ProxyClient } from '../proxy/proxy-client';
import { userHash } from '../proxy/naming';

const USAGE_TIMEOUT_MS = 3_000;

export function meRoutes(manager: StreamingProxyManager, client: ProxyClient): Router {
  const router = Router();

  router.get('/api/me', (_req, res) => {
    const caller = res.locals.caller as Caller;
    const body: Me = { userId: caller.userId, owner: userHash(caller.userId), operator: caller.operator === true && !caller.key };
    res.set('cache-control', 'no-store').json(body);
  });

  router.get('/api/me/usage', async (_req, res, next) => {
    try {
      const { userId } = res.locals.caller as Caller;
      const endpoint = await manager.endpoint(userId);
      let body: MeUsage = { running: false };
      if (endpoint) {
        const usage = await client.usage(endpoint, USAGE_TIMEOUT_MS).catch((error: Error) => {
          manager.endpointFailed(userId);
          throw new ServiceUnavailableError(`your streaming proxy did not say its usage: ${error.message}`, 'proxy_unreachable', {
            cause: error,
            publicMessage: 'your streaming proxy did not answer; try again in a moment',
          });
        });
        body = { running: true, ...usage };
      }
      res.set('cache-control', 'no-store').json(body);
    } catch (error) {
      next(error);
    }
  });

  return router;
}
