/** The caller's own proxy: start (idempotent), stop, status. The user is always the token's subject. */
import { Router } from 'express';
import type { StreamingProxyManager } from '../proxy/manager';
import type { Caller } from '../auth/authenticator';

export function proxyRoutes(manager: StreamingProxyManager): Router {
  const router = Router();

  router.post('/api/proxy/start', async (_req, res, next) => {
    try {
      const { userId } = res.locals.caller as Caller;
      const { created } = await manager.ensure(userId);
      res.status(created ? 201 : 200).json({ ...(await manager.status(userId)), created });
    } catch (error) {
      next(error);
    }
  });

  router.post('/api/proxy/stop', async (_req, res, next) => {
    try {
      const { userId } = res.locals.caller as Caller;
      const stopped = await manager.stop(userId, 'user');
      res.json({ status: stopped ? 'stopped' : 'not-found', stopped });
    } catch (error) {
      next(error);
    }
  });

  router.get('/api/proxy/status', async (_req, res, next) => {
    try {
      res.json(await manager.status((res.locals.caller as Caller).userId));
    } catch (error) {
      next(error);
    }
  });

  return router;
}
