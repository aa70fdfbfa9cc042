/**
 * Composition root: wires config, logger, auth, the proxy driver and manager, routes and the
 * upgrade handler, and owns the lifecycle. `startRelay` resolves once the relay listens;
 * `close` stops everything in reverse order of start.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import express from 'express';
import proxyaddr from 'proxy-addr';
import { NotFoundError, ServiceUnavailableError } from '@ctll/protocol';
import type { Config } from './config';
import { componentLogger, type Logger } from './logger';
import { Authenticator, type Caller } from './auth/authenticator';
import { loadOrCreateDevKeys, type DevKeys } from './auth/dev-keys';
import { Metrics } from './metrics';
import { ProcessDriver } from './proxy/process-driver';
import { PROXY_PORT } from './proxy/docker/spec';
import { backendUrlAt } from './proxy/docker/networks';
import type { ProxyDriver, ProxyExitListener } from './proxy/driver';
import { StreamingProxyManager } from './proxy/manager';
import type { ReplicaLock } from './proxy/replica-lock';
import { ExitClaims } from './proxy/exit-claims';
import { ProxyClient } from './proxy/proxy-client';
import { ProxyLinkPool } from './relay/proxy-link';
import { startCuller } from './proxy/culler';
import { proxyEnv } from './proxy/proxy-env';
import { StartBudget } from './proxy/start-budget';
import type { PgDatabase } from './audit/pg-database';
import { mapLimit } from './proxy/map-limit';
import { errorHandler } from './http/error-handler';
import { Drain, DRAINING_MESSAGE } from './http/drain';
import { rejectUpgradeWith } from './relay/upgrade-relay';
import { requestId } from './http/request-id';
import { healthRoutes, privateRoutes } from './routes/health-routes';
import { authConfigRoutes } from './routes/auth-config-routes';
import { HealthMonitor } from './health-monitor';
import { listen, startPrivateListener, type PrivateListener } from './http/private-listener';
import { ProxySecrets } from './proxy/proxy-secrets';
import { renewalRoutes } from './routes/renewal-routes';
import { authFailureLimit, healthLimit, IpLimits } from './http/ip-limits';
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
import { userHash } from './proxy/naming';
import { RelayKeys } from './auth/relay-keys';
import { keyRoutes } from './routes/key-routes';
import { closeLinksOfRevokedKeys } from './auth/revoked-key-links';
import { corsMiddleware } from './http/cors';
import { operatorRoutes } from './routes/operator-routes';
import { meRoutes } from './routes/me-routes';
import { meEventsRoutes } from './routes/me-events-routes';
import { tunnelHealthFeed } from './events/tunnel-health';
import { RecentErrors } from './operator/recent-errors';
import { consoleRoutes } from './routes/console-routes';
import { devSignInRoutes } from './routes/dev-sign-in-routes';

/** How long the proxies' 1012 closes may take to pass through before the tunnels are cut. */
const TUNNEL_CLOSE_WAIT_MS = 2_000;

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
  // Of the replicas sharing an engine, the one that claims a death reports it (exit-claims.ts).
  const driver = await createDriver(
    config,
    log('StreamingProxyManager'),
    (ownerHash, detail, exitId) =>
      void exitClaims.claim(ownerHash, exitId).then((ours) => {
        if (ours) manager.proxyDied(ownerHash, detail, exitId);
      }),
    () => config.proxy.apiBackendUrl ?? url,
    secrets,
  );
  const client = new ProxyClient();
  const metrics = new Metrics(() => driver.running(), config.proxyLimits.max);
  // The audit first: its migrations must have run before any proxy starts, and a bad DATABASE_URL
  // stops start-up here, before there is anything else to undo.
  const audit = await Audit.start(auditOptions(config), { driver, client, metrics, logger: log('audit') });
  const exitClaims = new ExitClaims(audit.database, log('StreamingProxyManager'));
  // Replicas sharing DATABASE_URL start and stop one user's proxy one at a time (PGlite is one process).
  const replicaLock: ReplicaLock | undefined = config.databaseUrl
    ? new (await import('./proxy/replica-lock')).PgReplicaLock({ url: config.databaseUrl, connectTimeoutMs: config.audit.connectTimeoutMs, logger: log('StreamingProxyManager') })
    : undefined;
  const manager = new StreamingProxyManager(
    driver,
    client,
    // Before a proxy goes, the audit reads its tunnel journal one last time.
    {
      idleTimeoutMs: config.proxy.idleTimeoutMs,
      beforeRemove: (handle, reason) => audit.beforeRemove(handle, reason),
      maxProxies: config.proxyLimits.max,
      // Counted in the audit's PostgreSQL when there is one, so replicas share it; in memory with PGlite.
      startBudget: new StartBudget({
        perMinute: config.proxyLimits.startRatePerMinute,
        pool: audit.database.kind === 'postgres' ? (audit.database as PgDatabase).pool : undefined,
        logger: log('StreamingProxyManager'),
      }),
      replicaLock,
    },
    log('StreamingProxyManager'),
  );
  audit.watch(manager);
  // Adopts the proxies a previous process left and starts following engine events; after the
  // manager exists, since it may report proxies that died meanwhile.
  await driver.start();
  manager.on('started', (event) => metrics.proxyStarts.observe({ driver: event.driver }, event.durationMs / 1000));
  manager.on('stopped', (event) => metrics.proxyStops.inc({ reason: event.reason }));
  manager.on('startFailed', () => metrics.proxyStartFailures.inc());
  const health = new HealthMonitor({ driver, database: { probe: () => audit.health(), now: () => audit.writerHealth() }, intervalMs: config.healthCheckIntervalMs, logger: log('health') });
  await health.start();

  const server = http.createServer();
  server.on('connection', (socket) => socket.setNoDelay(true));
  // Timeouts judge silence, never length: a generation or an upload may stream for hours, and
  // Node's default requestTimeout cuts every request at 300 s. The head stays bounded
  // (headersTimeout), and a socket silent for longer than any exchange or poll may be is closed.
  server.requestTimeout = 0;
  server.timeout = Math.max(config.requestTimeoutMs, config.bridge.pollTimeoutMs) + 10_000;
  await listen(server, config.port, config.host);
  const port = (server.address() as AddressInfo).port;
  // In the audit's database, so every replica knows every share.
  const shares = new ShareRegistry(audit.database, { ttlMs: config.zrok.shareTtlMs }, log('zrok')).start();

  // Relay keys live in the audit's database; each use is written by the audit's writer.
  const relayKeys = new RelayKeys(audit.database, (keyId, at) => audit.keyUsed(keyId, at));
  // Dev auth verifies through our own JWKS endpoint, so its URI is known only now.
  const auth = new Authenticator({
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    jwksUri: config.auth.mode === 'dev' ? `http://127.0.0.1:${port}/.well-known/jwks.json` : config.auth.jwksUri,
    jwksRefreshIntervalMs: config.auth.jwksRefreshIntervalMs,
    jwksCacheMaxAgeMs: config.auth.jwksCacheMaxAgeMs,
    maxLifetimeS: config.auth.maxLifetimeS,
    queryTokenPaths: [TUNNEL_PATH],
    relayKeys,
    operatorClaim: config.operatorClaim,
    logger: log('auth'),
    onFailure: (reason, req) => {
      metrics.authFailures.inc({ reason });
      audit.security({ kind: 'auth_failure', reason, source: addressOf(req) });
    },
  });

  const drain = new Drain();
  // Names this process to the proxies it relays tunnels to, so its drain closes only its own.
  const relayInstance = randomUUID();
  // Per-client-address limits; an address going over one is logged and audited once per window.
  const limits = new IpLimits(config.rateLimits, (limit, key) => {
    log('http').warn('client address over its limit', { limit, address: key });
    audit.security({ kind: 'rate_limited', reason: limit });
  });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  // Node's flat parser, not Express's default (qs): no route wants `a[b]=c` read as nested objects,
  // and qs cost api-backend about 2 % of its busy time on tunnel calls whose URL has a query,
  // which Express parses on every request though the tunnel passes the URL on untouched.
  app.set('query parser', 'simple');
  /** A caller's address as Express's req.ip gives it (TRUST_PROXY applied), also for raw upgrade requests. */
  const addressOf = (req: IncomingMessage): string => proxyaddr(req, app.get('trust proxy fn') as Parameters<typeof proxyaddr>[1]);
  // Only a trusted hop (nginx) may name the request; its `$request_id` then ties both logs together.
  app.use(requestId((req) => (req.app.get('trust proxy fn') as (address: string, hop: number) => boolean)(req.socket.remoteAddress ?? '', 0)));
  app.use((req, res, next) => {
    res.on('finish', () => metrics.httpRequests.inc({ route: routeLabel(req.route?.path), status: res.statusCode }));
    next();
  });
  // Browser apps: preflights are answered before anything asks for a token (CORS_ORIGINS).
  const allowOrigins = corsMiddleware(config.corsOrigins);
  if (allowOrigins) app.use(allowOrigins);
  app.use(drain.middleware());
  // Before securityEvents, which would audit every refusal: the limiter reports once per window.
  app.get('/health', healthLimit(limits));
  app.use('/api', authFailureLimit(limits));
  app.use(securityEvents((fact) => audit.security(fact)));
  app.use(healthRoutes(health, devKeys?.jwks, () => drain.active));
  // Before the JWT middleware: a user's proxy proves itself with its own secret, never a user token.
  app.use(proxyDiscoverRoutes(shares, secrets));
  // Public: the sign-in settings a bridge needs before it has any token.
  app.use(authConfigRoutes(config));
  // Dev auth only: the web console's dev sign-in (a real identity provider signs the console in itself).
  if (devKeys) app.use(devSignInRoutes({ keys: devKeys, issuer: config.auth.issuer, audience: config.auth.audience, maxLifetimeS: config.auth.maxLifetimeS }));
  // Also the proxy's: is a token a desktop sent in-band a renewal of its tunnel?
  app.use(renewalRoutes(auth, secrets, log('tunnel')));
  app.use('/api', auth.middleware());
  // Whatever a caller did may have moved their proxy's tunnel journal: the audit reads it soon.
  app.use('/api', (_req, res, next) => {
    res.on('finish', () => audit.activity(userHash((res.locals.caller as Caller).userId)));
    next();
  });
  // Relayed requests reach each proxy over one frame link (relay/proxy-link.ts). First of the
  // authenticated routes, being the busiest: no route below matches /api/tunnel/, and each router a
  // request passes on its way costs it CPU.
  const links = new ProxyLinkPool({ openTimeoutMs: 5_000, logger: log('relay') });
  app.use(
    tunnelRoutes(manager, metrics, {
      maxBodyBytes: config.maxBodyBytes,
      requestTimeoutMs: config.requestTimeoutMs,
      links,
    }),
  );
  app.use(proxyRoutes(manager));
  app.use(auditRoutes(audit));
  // Revoking a key also closes the tunnels it opened, at the user's proxy.
  app.use(keyRoutes(relayKeys, closeLinksOfRevokedKeys(manager, client, log('auth'))));
  // The web console's: the caller's own usage, and the operator's view (ADMIN_CLAIM).
  const recentErrors = new RecentErrors();
  app.use(meRoutes(manager, client));
  // The console's live My PC status (GET /api/me/events); its streams end when the drain begins.
  const healthFeed = tunnelHealthFeed(manager, log('http'));
  app.use(meEventsRoutes(healthFeed));
  app.use(operatorRoutes({ manager, client, maxProxies: config.proxyLimits.max, errors: recentErrors, logger: log('StreamingProxyManager') }));
  app.use(bridgeRoutes(manager, client, metrics, { pollTimeoutMs: config.bridge.pollTimeoutMs, requestTimeoutMs: config.requestTimeoutMs, links }));
  app.use(zrokRoutes({ registry: shares, manager, client, policy: { allowInsecure: config.zrok.allowInsecure, domains: config.zrok.shareDomains } }));
  // The web console at `/`, built beside this program (../../console/dist from src/ and dist/ alike).
  app.use(
    consoleRoutes({
      dir: path.join(__dirname, '../../console/dist'),
      providerOrigin: config.auth.mode !== 'dev' && config.signIn.webClientId ? new URL(config.auth.issuer).origin : undefined,
    }),
  );
  app.use((req, _res, next) => next(new NotFoundError(`no route ${req.method} ${req.path}`)));
  app.use(errorHandler(log('http'), (code, status) => recentErrors.record(code, status)));

  server.on('request', app);
  metrics.openTunnels = () => drain.openTunnels;
  const upgrade = tunnelUpgradeHandler({
    auth,
    manager,
    metrics,
    logger: log('tunnel'),
    limits,
    clientAddress: addressOf,
    onActivity: (ownerHash) => audit.activity(ownerHash),
    relayInstance,
    onTunnel: (socket, endpoint) => {
      drain.trackTunnel(socket, endpoint);
      socket.once('close', () => metrics.tunnelCloses.inc());
    },
  });
  server.on('upgrade', (req, socket, head) => {
    if (drain.active) rejectUpgradeWith(socket, new ServiceUnavailableError(DRAINING_MESSAGE, 'draining'));
    else void upgrade(req, socket, head);
  });
  const culler = startCuller(manager, config.proxy.cleanupCron, log('StreamingProxyManager'));
  let privateListener: PrivateListener | undefined;
  if (config.metrics.port !== null) {
    privateListener = await startPrivateListener({ host: config.metrics.host, port: config.metrics.port }, privateRoutes(health, metrics), log('http'));
  }

  const url = `http://127.0.0.1:${port}`;
  logger.info('api-backend listening', { component: 'api-backend', url, metrics: privateListener?.url ?? 'off', driver: driver.name, auth: config.auth.mode });

  // Shutdown: drain (see http/drain.ts), then stop in reverse order of start. Each step runs
  // whatever the one before it did: a failure is logged, never a reason to skip the rest, above
  // all the audit's flush; close() rejects at the very end if any step failed.
  const failedSteps: string[] = [];
  const step = async (name: string, work: () => unknown): Promise<void> => {
    try {
      await work();
    } catch (error) {
      failedSteps.push(name);
      logger.error('shutdown step failed', { component: 'api-backend', step: name, error: (error as Error).message });
    }
  };
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      drain.begin();
      healthFeed.close();
      culler.stop();
      health.stop();
      try {
        await step('drain', async () => {
          const inFlight = drain.pending;
          if (inFlight > 0) logger.info('draining: waiting for requests in flight', { component: 'api-backend', inFlight, graceMs: config.shutdownGraceMs });
          if (!(await drain.settle(config.shutdownGraceMs))) {
            logger.warn('drain grace over; cutting what still runs', { component: 'api-backend', inFlight: drain.pending, graceMs: config.shutdownGraceMs });
          }
        });
        // Some desktops' WebSocket tunnels run through this process. Their proxies close those (and
        // only those: other replicas relay the rest) with 1012 "relay restarting", so each of their
        // bridges reconnects at once instead of finding a cut line.
        await step('tunnels', async () => {
          if (drain.openTunnels === 0) return;
          let unreachable = 0;
          await mapLimit(drain.tunnelProxies(), 16, (endpoint) => client.reconnectTunnels(endpoint, relayInstance).catch(() => void (unreachable += 1)));
          if (unreachable > 0) logger.warn('some proxies could not close their tunnels; cutting them', { component: 'api-backend', unreachable });
          await drain.tunnelsClosed(TUNNEL_CLOSE_WAIT_MS);
        });
        await step('listener', () => {
          privateListener?.close();
          shares.close();
          server.close();
        });
        // Under the docker driver proxies outlive us and the next start adopts them; child processes cannot.
        await step('proxies', () => manager.close());
        await step('replica lock', () => replicaLock?.close());
        // Proxies left running keep their journals; one last read leaves less for the next start.
        await step('audit pull', () => audit.collector.pullAll());
        await step('connections', () => {
          server.closeAllConnections();
          drain.closeTunnels();
          client.close();
          links.close();
        });
      } finally {
        // Last, as it started first: it records the manager's final stops, then flushes.
        await step('audit flush', () => audit.close());
      }
      if (failedSteps.length > 0) throw new Error(`shutdown incomplete: ${failedSteps.join(', ')} failed (see the log)`);
      logger.info('api-backend stopped', { component: 'api-backend' });
    })());

  return { url, port, manager, audit, devKeys, metricsUrl: privateListener?.url, close };
}

/**
 * The configured driver. The engine drivers are loaded only when configured: dockerode and what it
 * pulls in cost an idle api-backend on the process driver several MB it would never use.
 */
async function createDriver(
  config: Config,
  logger: Logger,
  onExit: ProxyExitListener,
  apiBackendUrl: () => string | undefined,
  secrets: ProxySecrets,
): Promise<ProxyDriver> {
  const secretFor = (ownerHash: string) => secrets.secretFor(ownerHash);
  if (config.proxy.driver === 'docker' || config.proxy.driver === 'swarm') {
    const Driver = config.proxy.driver === 'swarm' ? (await import('./proxy/swarm-driver')).SwarmDriver : (await import('./proxy/docker-driver')).DockerDriver;
    return new Driver({
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
      placement: config.proxy.placement,
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
    memoryCheckMs: config.proxy.memoryCheckMs,
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
