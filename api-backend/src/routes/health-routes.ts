/**
 * Health and metrics, split by who may ask.
 *
 * Public (the relay's port, reachable through nginx): `/health` says only "ok" or "degraded"
 * (200 while the proxies can be served, else 503), or "draining" (503) during a shutdown, and the
 * dev JWKS. Private (METRICS_PORT, never
 * published): `/metrics` for Prometheus and `/health/details` with each check's detail, which may
 * name the database host, Docker's messages or internal addresses. Both answer from what the
 * relay already holds (health-monitor.ts, the driver's census): no request reaches the engine.
 */
import { Router } from 'express';
import type { HealthMonitor } from '../health-monitor';
import type { Metrics } from '../metrics';

export function healthRoutes(monitor: HealthMonitor, jwks?: object, draining: () => boolean = () => false): Router {
  const router = Router();
  router.get('/health', (_req, res) => {
    // Shutting down: a load balancer must stop sending here, whatever the dependencies say.
    if (draining()) {
      res.status(503).json({ status: 'draining' });
      return;
    }
    const report = monitor.report();
    res.status(report.serving ? 200 : 503).json({ status: report.status });
  });
  if (jwks) router.get('/.well-known/jwks.json', (_req, res) => res.json(jwks));
  return router;
}

export function privateRoutes(monitor: HealthMonitor, metrics: Metrics): Router {
  const router = Router();
  router.get('/health/details', (_req, res) => {
    const { serving, ...report } = monitor.report();
    res.status(serving ? 200 : 503).json(report);
  });
  router.get('/metrics', async (_req, res, next) => {
    try {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    } catch (error) {
      next(error);
    }
  });
  return router;
}
