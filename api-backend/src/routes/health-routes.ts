/** Unauthenticated routes: liveness with dependency status, Prometheus metrics, dev JWKS. */
import { Router } from 'express';
import type { ProxyDriver } from '../proxy/driver';
import type { Metrics } from '../metrics';

/** The audit's state as /health shows it: `queued` records wait for the database, `dropped` were lost. */
export interface DatabaseHealth {
  ok: boolean;
  detail: string;
  queued: number;
  dropped: number;
}

export function healthRoutes(
  driver: ProxyDriver,
  metrics: Metrics,
  jwks?: object,
  database?: () => Promise<DatabaseHealth>,
  draining: () => boolean = () => false,
): Router {
  const router = Router();

  router.get('/health', async (_req, res) => {
    // Shutting down: a load balancer must stop sending here, whatever the dependencies say.
    if (draining()) {
      res.status(503).json({ status: 'draining' });
      return;
    }
    const [proxies, audit] = await Promise.all([
      driver.health().catch((error: Error) => ({ ok: false, detail: error.message })),
      database?.(),
    ]);
    // Only the proxies decide the status code. A database outage degrades the audit, not the
    // relay: its records wait in the queue and tunnels keep working, so an orchestrator must not
    // restart api-backend over it (that would lose the queue). It shows as status "degraded".
    const ok = proxies.ok;
    res.status(ok ? 200 : 503).json({
      status: ok && (audit?.ok ?? true) ? 'ok' : 'degraded',
      checks: { [driver.name === 'docker' ? 'docker' : 'proxies']: proxies, ...(audit ? { database: audit } : {}) },
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
