/** Unauthenticated routes: liveness with dependency status, Prometheus metrics, dev JWKS. */
import { Router } from 'express';
import type { ProxyDriver } from '../proxy/driver';
import type { Metrics } from '../metrics';

export function healthRoutes(driver: ProxyDriver, metrics: Metrics, jwks?: object): Router {
  const router = Router();

  router.get('/health', async (_req, res) => {
    const proxies = await driver.health().catch((error: Error) => ({ ok: false, detail: error.message }));
    const ok = proxies.ok;
    res.status(ok ? 200 : 503).json({
      status: ok ? 'ok' : 'degraded',
      checks: { [driver.name === 'docker' ? 'docker' : 'proxies']: proxies },
    });
  });

  router.get('/metrics', async (_req, res, next) => {
    try {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    } catch (error) {
      next(error);
    }
  });

  if (jwks) router.get('/.well-known/jwks.json', (_req, res) => res.json(jwks));
  return router;
}
