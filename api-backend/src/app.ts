/**
 * Composition root: wires config, logger, auth, the proxy driver and manager, routes and the
 * upgrade handler, and owns the lifecycle. `startRelay` resolves once the relay listens;
 * `close` stops everything in reverse order of start.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { NotFoundError } from '@ctll/protocol';
import type { Config } from './config';
import { componentLogger, type Logger } from './logger';
import { Authenticator } from './auth/authenticator';
import { loadOrCreateDevKeys, type DevKeys } from './auth/dev-keys';
import { Metrics } from './metrics';
import { ProcessDriver } from './proxy/process-driver';
import { DockerDriver } from './proxy/docker-driver';
import { PROXY_PORT } from './proxy/docker-spec';
import { backendUrlAt } from './proxy/docker-networks';
import type { ProxyDriver } from './proxy/driver';
import { StreamingProxyManager } from './proxy/manager';
import { ProxyClient } from './proxy/proxy-client';
import { startCuller } from './proxy/culler';
import { proxyEnv } from './proxy/proxy-env';
import { errorHandler } from './http/error-handler';
import { healthRoutes, privateRoutes } from './routes/health-routes';
import { HealthMonitor } from './health-monitor';
import { listen, startPrivateListener, type PrivateListener } from './http/private-listener';
import { ProxySecrets } from './proxy/proxy-secrets';
import { proxyRoutes } from './routes/proxy-routes';
import { tunnelRoutes } from './routes/tunnel-routes';
import { bridgeRoutes } from './routes/bridge-routes';
import { tunnelUpgradeHandler, TUNNEL_PATH } from './routes/tunnel-upgrade';
import { ShareRegistry } from './zrok/registry';
import { zrokRoutes } from './zrok/routes';
import { proxyDiscoverRoutes } from './zrok/proxy-discover';
import { Audit, auditOptions } from './audit/audit';
import { securityEvents } from './audit/security';
import { auditRoutes } from './routes/audit-routes';

export interface Relay {
  url: string;
  port: number;
  manager: StreamingProxyManager;
  audit: Audit;
  devKeys?: DevKeys;
  /** The private listener's base URL (/metrics, /health/details); undefined with METRICS_PORT=off. */
  metricsUrl?: string;
  close(): Promise<void>;
}

export async function startRelay(config: Config, logger: Logger): Promise<Relay> {
  const log = (component: string) => componentLogger(logger, component);
  const devKeys = config.auth.mode === 'dev' ? loadOrCreateDevKeys(config.auth.keyDir) : undefined;
  const secrets = ProxySecrets.load({ key: config.proxySecretKey, dataDir: config.dataDir });

  // The driver reports deaths to the manager, which is made just below; the callback runs later.
  // Proxies call api-backend back (zrok discovery) at `url`, known once we listen; no proxy starts before that.
  const driver = createDriver(
    config,
    log('StreamingProxyManager'),
    (ownerHash, detail) => manager.proxyDied(ownerHash, detail),
    () => config.proxy.apiBackendUrl ?? url,
    secrets,
  );
  const client = new ProxyClient();
  const metrics = new Metrics(() => driver.running());
  // The audit first: its migrations must have run before any proxy starts, and a bad DATABASE_URL
  // stops start-up here, before there is anything else to undo.
  const audit = await Audit.start(auditOptions(config), { driver, client, metrics, logger: log('audit') });
  const manager = new StreamingProxyManager(
    driver,
    client,
    // Before a proxy goes, the audit reads its tunnel journal one last time.
    { idleTimeoutMs: config.proxy.idleTimeoutMs, beforeRemove: (handle, reason) => audit.beforeRemove(handle, reason) },
    log('StreamingProxyManager'),
  );
  audit.watch(manager);
  // Adopts the proxies a previous process left and starts following Docker events; after the
  // manager exists, since it may report proxies that died meanwhile.
  if (driver instanceof DockerDriver) await driver.start();
  manager.on('started', (event) => metrics.proxyStarts.observe({ driver: event.driver }, event.durationMs / 1000));
  manager.on('stopped', (event) => metrics.proxyStops.inc({ reason: event.reason }));
  const health = new HealthMonitor({ driver, database: { probe: () => audit.health(), now: () => audit.writerHealth() }, intervalMs: config.healthCheckIntervalMs, logger: log('health') });
  await health.start();

  const server = http.createServer();
  server.on('connection', (socket) => socket.setNoDelay(true));
  await listen(server, config.port, config.host);
  const port = (server.address() as AddressInfo).port;
  const shares = new ShareRegistry({ ttlMs: config.zrok.shareTtlMs }, log('zrok')).start();

  // Dev auth verifies through our own JWKS endpoint, so its URI is known only now.
  const auth = new Authenticator({
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    jwksUri: config.auth.mode === 'dev' ? `http://127.0.0.1:${port}/.well-known/jwks.json` : config.auth.jwksUri,
    queryTokenPaths: [TUNNEL_PATH],
    onFailure: (reason) => {
      metrics.authFailures.inc({ reason });
      audit.security({ kind: 'auth_failure', reason });
    },
  });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.use((req, res, next) => {
    res.on('finish', () => metrics.httpRequests.inc({ route: routeLabel(req.route?.path), status: res.statusCode }));
    next();
  });
  app.use(securityEvents((fact) => audit.security(fact)));
  app.use(healthRoutes(health, devKeys?.jwks));
  // Before the JWT middleware: a user's proxy proves itself with its own secret, never a user token.
  app.use(proxyDiscoverRoutes(shares, secrets));
  app.use('/api', auth.middleware());
  app.use(proxyRoutes(manager));
  app.use(auditRoutes(audit));
  app.use(bridgeRoutes(manager, client, metrics, { pollTimeoutMs: config.bridge.pollTimeoutMs, requestTimeoutMs: config.requestTimeoutMs }));
  app.use(
    tunnelRoutes(manager, client, metrics, {
      maxBodyBytes: config.maxBodyBytes,
      requestTimeoutMs: config.requestTimeoutMs,
    }),
  );
  app.use(zrokRoutes({ registry: shares, manager, client, policy: { allowInsecure: config.zrok.allowInsecure } }));
  app.use((req, _res, next) => next(new NotFoundError(`no route ${req.method} ${req.path}`)));
  app.use(errorHandler(log('http')));

  server.on('request', app);
  server.on('upgrade', tunnelUpgradeHandler({ auth, manager, metrics, logger: log('tunnel') }));
  const culler = startCuller(manager, config.proxy.cleanupCron, log('StreamingProxyManager'));
  let privateListener: PrivateListener | undefined;
  if (config.metrics.port !== null) {
    privateListener = await startPrivateListener({ host: config.metrics.host, port: config.metrics.port }, privateRoutes(health, metrics), log('http'));
  }

  const url = `http://127.0.0.1:${port}`;
  logger.info('api-backend listening', { component: 'api-backend', url, metrics: privateListener?.url ?? 'off', driver: driver.name, auth: config.auth.mode });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      culler.stop();
      health.stop();
      privateListener?.close();
      shares.close();
      server.close();
      await manager.close();
      server.closeAllConnections();
      client.close();
      // Last, as it started first: it records the manager's final stops, then flushes.
      await audit.close();
      logger.info('api-backend stopped', { component: 'api-backend' });
    })());

  return { url, port, manager, audit, devKeys, metricsUrl: privateListener?.url, close };
}

function createDriver(
  config: Config,
  logger: Logger,
  onExit: (ownerHash: string, detail: string) => void,
  apiBackendUrl: () => string | undefined,
  secrets: ProxySecrets,
): ProxyDriver {
  const secretFor = (ownerHash: string) => secrets.secretFor(ownerHash);
  if (config.proxy.driver === 'docker') {
    return new DockerDriver({
      image: config.proxy.image,
      memoryMb: config.proxy.memoryMb,
      cpus: config.proxy.cpus,
      subnetPool: config.proxy.subnetPool,
      subnetPrefix: config.proxy.subnetPrefix,
      networkMode: config.proxy.networkMode,
      selfContainer: config.proxy.selfContainer,
      egress: config.proxy.egress,
      scope: config.proxy.scope,
      startTimeoutMs: config.proxy.startTimeoutMs,
      endpointCacheMs: config.proxy.endpointCacheMs,
      sweepIntervalMs: config.sweepIntervalMs,
      secretFor,
      // A proxy calls api-backend back on our listening port, at our address on the proxy's own network.
      env: (ownerHash, secret, backendAddress) =>
        proxyEnv(config, {
          ownerHash,
          secret,
          host: '0.0.0.0',
          port: PROXY_PORT,
          apiBackendUrl: config.proxy.apiBackendUrl ?? backendUrlAt(apiBackendUrl(), backendAddress),
        }),
      logger,
      onExit,
    });
  }
  return new ProcessDriver({
    script: config.proxy.script,
    memoryMb: config.proxy.memoryMb,
    startTimeoutMs: config.proxy.startTimeoutMs,
    secretFor,
    env: (ownerHash, secret) => proxyEnv(config, { ownerHash, secret, host: '127.0.0.1', port: 0, apiBackendUrl: apiBackendUrl() }),
    logger,
    onExit,
  });
}

/** The matched route's template, never the raw path: label values must stay a bounded set. */
function routeLabel(routePath: unknown): string {
  if (typeof routePath === 'string') return routePath;
  if (Array.isArray(routePath)) return String(routePath[routePath.length - 1]);
  return 'unmatched';
}
