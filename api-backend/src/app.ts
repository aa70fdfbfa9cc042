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
import type { ProxyDriver } from './proxy/driver';
import { StreamingProxyManager } from './proxy/manager';
import { ProxyClient } from './proxy/proxy-client';
import { startCuller } from './proxy/culler';
import { proxyEnv } from './proxy/proxy-env';
import { errorHandler } from './http/error-handler';
import { healthRoutes } from './routes/health-routes';
import { proxyRoutes } from './routes/proxy-routes';
import { tunnelRoutes } from './routes/tunnel-routes';
import { bridgeRoutes } from './routes/bridge-routes';
import { tunnelUpgradeHandler, TUNNEL_PATH } from './routes/tunnel-upgrade';

export interface Relay {
  url: string;
  port: number;
  manager: StreamingProxyManager;
  devKeys?: DevKeys;
  close(): Promise<void>;
}

export async function startRelay(config: Config, logger: Logger): Promise<Relay> {
  const log = (component: string) => componentLogger(logger, component);
  const devKeys = config.auth.mode === 'dev' ? loadOrCreateDevKeys(config.auth.keyDir) : undefined;

  // The driver reports deaths to the manager, which is made just below; the callback runs later.
  const driver = createDriver(config, log('StreamingProxyManager'), (ownerHash, detail) =>
    manager.proxyDied(ownerHash, detail),
  );
  const client = new ProxyClient();
  const manager = new StreamingProxyManager(driver, client, { idleTimeoutMs: config.proxy.idleTimeoutMs }, log('StreamingProxyManager'));
  const metrics = new Metrics(async () => (await driver.list()).length);
  manager.on('started', (event) => metrics.proxyStarts.observe({ driver: event.driver }, event.durationMs / 1000));
  manager.on('stopped', (event) => metrics.proxyStops.inc({ reason: event.reason }));

  const server = http.createServer();
  server.on('connection', (socket) => socket.setNoDelay(true));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  // Dev auth verifies through our own JWKS endpoint, so its URI is known only now.
  const auth = new Authenticator({
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    jwksUri: config.auth.mode === 'dev' ? `http://127.0.0.1:${port}/.well-known/jwks.json` : config.auth.jwksUri,
    queryTokenPaths: [TUNNEL_PATH],
    onFailure: (reason) => metrics.authFailures.inc({ reason }),
  });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.use((req, res, next) => {
    res.on('finish', () => metrics.httpRequests.inc({ route: routeLabel(req.route?.path, req.path), status: res.statusCode }));
    next();
  });
  app.use(healthRoutes(driver, metrics, devKeys?.jwks));
  app.use('/api', auth.middleware());
  app.use(proxyRoutes(manager));
  app.use(bridgeRoutes(manager, client, metrics, { pollTimeoutMs: config.bridge.pollTimeoutMs, requestTimeoutMs: config.requestTimeoutMs }));
  app.use(
    tunnelRoutes(manager, client, metrics, {
      maxBodyBytes: config.maxBodyBytes,
      requestTimeoutMs: config.requestTimeoutMs,
    }),
  );
  app.use((req, _res, next) => next(new NotFoundError(`no route ${req.method} ${req.path}`)));
  app.use(errorHandler(log('http')));

  server.on('request', app);
  server.on('upgrade', tunnelUpgradeHandler({ auth, manager, metrics, logger: log('tunnel') }));
  const culler = startCuller(manager, config.proxy.cleanupCron, log('StreamingProxyManager'));

  const url = `http://127.0.0.1:${port}`;
  logger.info('api-backend listening', { component: 'api-backend', url, driver: driver.name, auth: config.auth.mode });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      culler.stop();
      server.close();
      await manager.close();
      server.closeAllConnections();
      client.close();
      logger.info('api-backend stopped', { component: 'api-backend' });
    })());

  return { url, port, manager, devKeys, close };
}

function createDriver(config: Config, logger: Logger, onExit: (ownerHash: string, detail: string) => void): ProxyDriver {
  if (config.proxy.driver === 'docker') {
    throw new Error('PROXY_DRIVER=docker is not available in this build yet; use PROXY_DRIVER=process');
  }
  return new ProcessDriver({
    script: config.proxy.script,
    memoryMb: config.proxy.memoryMb,
    startTimeoutMs: config.proxy.startTimeoutMs,
    env: (ownerHash, secret) => proxyEnv(config, { ownerHash, secret, host: '127.0.0.1', port: 0 }),
    logger,
    onExit,
  });
}

function routeLabel(routePath: unknown, path: string): string {
  if (typeof routePath === 'string') return routePath;
  if (Array.isArray(routePath)) return String(routePath[routePath.length - 1]);
  return path.startsWith('/api/') ? 'unmatched' : path;
}
