/**
 * The caller's own proxy: start (idempotent), stop, status. The user is always the token's subject.
 * Start and stop share one per-user budget (PROXY_START_RATE_PER_MINUTE), so a loop of them cannot
 * keep the driver busy.
 */
import { Router } from 'express';
import type { StreamingProxyManager } from '../proxy/manager';
import type { Caller } from '../auth/authenticator';
import { perUserRate } from '../http/per-user-rate';

export function proxyRoutes(manager: StreamingProxyManager, limits: { startRatePerMinute: number }): Router {
  const router = Router();
  const startStopBudget = perUserRate({ perMinute: limits.startRatePerMinute, what: 'proxy starts and stops' });

  router.post('/api/proxy/start', startStopBudget, async (_req, res, next) => {
    try {
      const { userId } = res.locals.caller as Caller;
      const { created } = await manager.ensure(userId);
      res.status(created ? 201 : 200).json({ ...(await manager.status(userId)), created });
    } catch (error) {
      next(error);
    }
  });

  router.post('/api/proxy/stop', startStopBudget, async (_req, res, next) => {
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
