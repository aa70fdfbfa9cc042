/**
 * The api-backend's one validated config object. This module (and main.ts, which hands it the
 * environment) is the only reader of process.env; every other module receives what it needs.
 * A bad value stops start-up with the variable's name and what was expected.
 */
import path from 'node:path';
import cron from 'node-cron';
import { z } from 'zod';
import { DEFAULT_SHARE_DOMAINS, parseShareDomains } from '@ctll/protocol';
import { SubnetPool } from './proxy/subnet-pool';
import { parseCorsOrigins } from './http/cors';
import { parseOperatorClaim, type OperatorClaim } from './auth/operator-claim';

const optionalString = z.string().trim().min(1).optional().or(z.literal('').transform(() => undefined));

/** Every default is written here, so one place shows what a bare `npm start` runs with. */
const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  PUBLIC_URL: z.string().url().optional().or(z.literal('').transform(() => undefined)),
  DATA_DIR: z.string().min(1).default('./data'),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'debug']).default('info'),

  AUTH0_DOMAIN: optionalString,
  AUTH0_AUDIENCE: optionalString,
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  JWT_JWKS_URI: z.string().url().optional().or(z.literal('').transform(() => undefined)),
  /** Token checks: least time between two JWKS fetches; a token naming a key id (kid) still unknown after the last fetch is refused (401) until the next. */
  JWKS_REFRESH_INTERVAL_MS: z.coerce.number().int().min(100).default(30_000),
  /** Token checks: fetched signing keys are used this long, then fetched again: a key removed from the JWKS stops working within it (while the JWKS is unreachable the last keys stay in use). At least JWKS_REFRESH_INTERVAL_MS. */
  JWKS_CACHE_MAX_AGE_MS: z.coerce.number().int().min(100).default(60_000),
  /** Token checks: longest lifetime accepted (exp - iat, or exp - now without iat), in seconds; tokens without exp are refused. Dev tokens are signed for this long. */
  JWT_MAX_LIFETIME_S: z.coerce.number().int().min(60).default(7 * 24 * 3600),

  // Sign-in: what GET /api/auth/config tells `ctll-bridge login` (issuer and audience come from the settings above).
  /** Client id of the identity provider's public (native) application with the Device Code grant; unset: no device login is offered. */
  OIDC_DEVICE_CLIENT_ID: optionalString,
  /** Space-separated scopes the bridge asks for; offline_access brings the refresh token that keeps a bridge signed in. */
  OIDC_SCOPES: z.string().trim().min(1).default('openid profile email offline_access'),
  /** Client id of the identity provider's public single-page application (authorization code with PKCE, redirect URI: the relay's own `/`) that the web console signs in as; unset: the console offers no sign-in with a real identity provider. */
  OIDC_WEB_CLIENT_ID: optionalString,
  /** Tunnel renewal: a desktop link whose token expired and was not renewed (in-band on a WebSocket, by its next request on long-poll) is closed (4401) this long after the expiry. */
  TOKEN_EXPIRY_GRACE_MS: z.coerce.number().int().min(0).default(30_000),

  /** Postgres for the audit trail; unset: PGlite (embedded Postgres) in DATA_DIR/pglite. */
  DATABASE_URL: z
    .string()
    .trim()
    .refine(isPostgresUrl, 'must be a postgres:// or postgresql:// URL, e.g. postgres://user:password@host:5432/db')
    .optional()
    .or(z.literal('').transform(() => undefined)),
  /** Most connections the audit keeps open to DATABASE_URL. */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(5),
  /** Longest wait for a new connection to DATABASE_URL; past it the attempt counts as "unavailable". */
  DATABASE_CONNECT_TIMEOUT_MS: z.coerce.number().int().positive().default(5_000),
  /** Start-up retries an unreachable database this long, then stops with an error naming DATABASE_URL. */
  DATABASE_STARTUP_TIMEOUT_MS: z.coerce.number().int().nonnegative().default(30_000),
  /** Folder of the schema migrations (NNNN_name.sql); unset: postgres/migrations of this checkout or image. */
  AUDIT_MIGRATIONS_DIR: optionalString,
  /** Audit writes: most records per transaction (a full batch is written at once). */
  AUDIT_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(100),
  /** Audit writes: how often waiting records are written when fewer than a batch wait. */
  AUDIT_FLUSH_INTERVAL_MS: z.coerce.number().int().min(10).default(250),
  /** Audit writes: records held while the database is away; beyond this new ones are dropped and counted. */
  AUDIT_QUEUE_MAX: z.coerce.number().int().min(1).default(100_000),
  /** Audit writes: longest pause between retries while the database is away (starts at 250 ms, doubles). */
  AUDIT_RETRY_MAX_MS: z.coerce.number().int().min(10).default(5_000),
  /** How often the tunnel journals of proxies with recent activity are pulled into the audit (also pulled right before a proxy is removed). */
  AUDIT_PULL_INTERVAL_MS: z.coerce.number().int().min(50).default(3_000),
  /** On shutdown, how long queued audit records may take to reach the database before they count as dropped. */
  AUDIT_SHUTDOWN_FLUSH_MS: z.coerce.number().int().nonnegative().default(5_000),
  // Audit: security counts, priority, retention, and the journal pull's pace.
  /** Security events are written as one row per (source address, kind, reason, caller, target, route) per window of this length. */
  AUDIT_SECURITY_WINDOW_MS: z.coerce.number().int().min(100).default(60_000),
  /** Most groups counted in one window; events beyond go to one 'other' group per kind and reason (bounded memory). */
  AUDIT_SECURITY_MAX_KEYS: z.coerce.number().int().min(1).default(1_000),
  /** Security rows waiting for the database, apart from session records; beyond this they are dropped (reason security_overflow). */
  AUDIT_SECURITY_QUEUE_MAX: z.coerce.number().int().min(1).default(10_000),
  /** Audit rows (sessions and security events) that ended more than this many days ago are removed daily; 0 keeps everything. */
  AUDIT_RETENTION_DAYS: z.coerce.number().int().nonnegative().default(90),
  /** When the daily audit retention runs (node-cron expression). */
  AUDIT_RETENTION_CRON: z.string().min(1).refine((v) => cron.validate(v), 'must be a cron expression').default('17 3 * * *'),
  /** A proxy with no activity seen by api-backend is still read this often (the net for what api-backend cannot see). */
  AUDIT_IDLE_PULL_INTERVAL_MS: z.coerce.number().int().min(50).default(60_000),
  /** Proxies read at once by the journal pull. */
  AUDIT_PULL_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),

  PROXY_DRIVER: z.enum(['process', 'docker', 'swarm']).default('process'),
  PROXY_IMAGE: z.string().min(1).default('ctll/streaming-proxy:latest'),
  PROXY_MEMORY_MB: z.coerce.number().int().min(32).max(65536).default(512),
  PROXY_CPUS: z.coerce.number().positive().max(64).default(0.5),
  PROXY_IDLE_TIMEOUT_MS: z.coerce.number().int().positive().default(600_000),
  PROXY_CLEANUP_CRON: z.string().min(1).refine((v) => cron.validate(v), 'must be a cron expression').default('* * * * *'),
  PROXY_SUBNET_POOL: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'must be a CIDR like 10.200.0.0/16').default('10.200.0.0/16'),
  /**
   * docker and swarm drivers: each user network is one /PROXY_SUBNET_PREFIX block of PROXY_SUBNET_POOL
   * (/28 of a /16: 4096 users). Swarm replicas running as tasks need 28 or less, 27 past two
   * api-backend nodes or seven replicas (proxy/swarm-addresses.ts).
   */
  PROXY_SUBNET_PREFIX: z.coerce.number().int().min(8).max(29).default(28),
  /** docker driver: `host` when api-backend runs on the Docker host (reaches proxies by address), `container` when it runs in a container (joins each user network), `auto` asks the engine. */
  PROXY_NETWORK_MODE: z.enum(['auto', 'host', 'container']).default('auto'),
  /** docker driver: api-backend's own container name or id (implies container mode); unset: found by hostname, which Docker sets to the container id. */
  PROXY_SELF_CONTAINER: optionalString,
  /** docker driver: `internet` lets proxies reach beyond their network (zrok shares need it); `none` makes user networks internal. */
  PROXY_EGRESS: z.enum(['internet', 'none']).default('internet'),
  /** docker driver: labels this deployment's containers and networks, so api-backends sharing one engine never touch each other's. */
  PROXY_SCOPE: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'must be 1-63 lower-case letters, digits, ".", "_" or "-"').default('default'),
  PROXY_START_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),
  // Swarm driver (PROXY_DRIVER=swarm): the docker settings above apply too.
  /** swarm driver: placement constraints for proxy services, comma-separated (e.g. `node.labels.ctll-proxies==true`); empty: any node. */
  PROXY_PLACEMENT: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((c) => c.trim()).filter(Boolean))
    .refine((list) => list.every((c) => /^[A-Za-z0-9_.-]+\s*(==|!=)\s*\S+$/.test(c)), 'must be constraints like node.role==worker, comma-separated'),
  // Memory watchdog (process driver): the heap cap misses buffers, so resident memory is checked too.
  /** process driver: how often each proxy's resident memory (/proc VmRSS) is checked against PROXY_MEMORY_MB; one over it is killed. 0 turns the check off. */
  PROXY_MEMORY_CHECK_MS: z.coerce.number().int().nonnegative().default(1_000),
  PROXY_PING_INTERVAL_MS: z.coerce.number().int().positive().default(15_000),
  /** docker driver: how long a running proxy's address is reused without asking the engine; 0 asks on every request. */
  PROXY_ENDPOINT_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(5_000),
  /** Path of the bundled streaming-proxy the process driver runs. */
  PROXY_SCRIPT: z.string().min(1).optional(),

  /** Long-poll transport: an empty poll is answered after this long. */
  BRIDGE_POLL_TIMEOUT_MS: z.coerce.number().int().positive().default(25_000),
  /** Long-poll transport: a bridge that stops polling and heartbeating is dropped after this long. */
  BRIDGE_GRACE_MS: z.coerce.number().int().positive().default(30_000),
  /** Long-poll transport: requests waiting for one bridge before new ones get 503. */
  BRIDGE_MAX_QUEUE: z.coerce.number().int().positive().default(64),
  // Desktop links: enforced by each user's proxy, passed to it under the same name.
  /** Requests open at once on one desktop link (a zrok share counts as one); one more gets 429 too_many_streams. */
  MAX_STREAMS_PER_TUNNEL: z.coerce.number().int().positive().default(256),

  REQUEST_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(100 * 1024 * 1024),
  /** Express `trust proxy`: which hops may set X-Forwarded-For (e.g. nginx's network). */
  TRUST_PROXY: z.string().default('loopback'),
  /**
   * On SIGTERM: how long answers in flight may go on streaming while api-backend drains (new work
   * gets 503 "draining") before they are cut. See README "Restarts and crashes".
   */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().nonnegative().default(30_000),

  /** zrok shares: a registered share expires this long after its last heartbeat (bridges beat at a third of it). */
  ZROK_SHARE_TTL_MS: z.coerce.number().int().min(1000).default(90_000),
  /** zrok shares: how often each proxy pulls its user's shares from api-backend and health-checks them. */
  ZROK_DISCOVERY_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000),
  /** Development only: accept plain-http shares and private, loopback or link-local addresses. */
  ZROK_ALLOW_INSECURE: z.enum(['true', 'false'], { message: 'must be true or false' }).default('false'),
  /** zrok shares: comma-separated hosts a share URL may be on (each allows its subdomains too). */
  ZROK_SHARE_DOMAINS: z.string().default(DEFAULT_SHARE_DOMAINS.join(',')),
  /** How a streaming-proxy reaches api-backend (zrok discovery); unset: http://127.0.0.1:<PORT>, right for the process driver. */
  PROXY_API_BACKEND_URL: z.string().url().optional().or(z.literal('').transform(() => undefined)),

  // Private listener and engine-free health: what anonymous callers can and cannot reach.
  /** Port of the private listener for /metrics and /health/details (never publish it): 0 takes any free port, "off" serves neither. */
  METRICS_PORT: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.union([z.literal('off'), z.coerce.number().int().min(0).max(65535)], { message: 'must be a port number (0: any free port) or "off"' }).default(9464),
  ),
  /** Address of the private listener: loopback by default; in compose the container's own address, reached only on its networks. */
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** How often the Docker engine and the database are checked in the background; /health answers from the last check. */
  HEALTH_CHECK_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000),
  /** docker driver: how often it compares its proxies with the engine (adopts, reports the dead, removes the half-made). */
  PROXY_SWEEP_INTERVAL_MS: z.coerce.number().int().min(1000).default(60_000),
  /** Key the proxies' secrets derive from (HMAC-SHA256 of the owner hash), 64 hex digits; unset: made once in DATA_DIR/proxy-secret.key. */
  PROXY_SECRET_KEY: z
    .string()
    .trim()
    .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits, e.g. from: openssl rand -hex 32')
    .optional()
    .or(z.literal('').transform(() => undefined)),
  // Per-client-address limits for callers not yet known (http/ip-limits.ts). A client address is
  // req.ip (TRUST_PROXY decides whether X-Forwarded-For is believed); an IPv6 address counts by its /64.
  /** `false` turns the per-address limits below off (nginx's own limits stay). */
  RATE_LIMIT_ENABLED: z.enum(['true', 'false'], { message: 'must be true or false' }).default('true'),
  /** Failed authentications (401) one address may cause per minute; past it, its /api requests and tunnel upgrades get 429 until that minute is over. */
  RATE_LIMIT_AUTH_FAILURES: z.coerce.number().int().min(1).default(30),
  /** Tunnel upgrade attempts (GET /ws/tunnel) per address per minute, valid or not. */
  RATE_LIMIT_UPGRADES: z.coerce.number().int().min(1).default(60),
  /** GET /health requests per address per minute. */
  RATE_LIMIT_HEALTH: z.coerce.number().int().min(1).default(120),
  // Per-user limits. The USER_* ones are passed to each user's own proxy under the same names and
  // enforced there, so they hold whichever api-backend replica a request comes through.
  /** Requests (and new desktop links) one user may start a minute, sustained; past it 429 with Retry-After. */
  USER_RATE_PER_MINUTE: z.coerce.number().int().positive().default(600),
  /** Requests one user may start at once on top of the sustained rate (the token bucket's size). */
  USER_RATE_BURST: z.coerce.number().int().positive().default(120),
  /** Requests relayed at once for one user, over all their desktop links and shares; one more gets 429. */
  USER_MAX_STREAMS: z.coerce.number().int().positive().default(100),
  /** WebSocket tunnels one user may hold open at once; one more is refused with 429. */
  USER_MAX_WS_LINKS: z.coerce.number().int().positive().default(4),
  /** Polling bridges one user may have registered at once; one more registration gets 429. */
  USER_MAX_POLL_LINKS: z.coerce.number().int().positive().default(4),
  /** Proxies made for one user a minute (an idempotent start is free; with DATABASE_URL counted in Postgres, shared by all replicas); one more start gets 429. */
  PROXY_START_RATE_PER_MINUTE: z.coerce.number().int().positive().default(10),
  /** Most proxies running at once; one more user gets 503 `capacity`. Unset: 1000 with docker (at most the subnet pool's networks), 200 with process. */
  PROXY_MAX: z.coerce.number().int().positive().optional().or(z.literal('').transform(() => undefined)),

  // Browser apps on other origins (http/cors.ts).
  /** Comma-separated origins whose browser apps may call the relay (e.g. https://app.example.com,http://localhost:5173), or * for any; empty: none. */
  CORS_ORIGINS: z.string().default(''),

  // The operator's view (routes/operator-routes.ts).
  /** The token claim that makes a caller an operator, as claim=value (e.g. roles=ctll-admin); the claim may be a string or a list of strings, and a dotted name reaches a nested one (realm_access.roles=ctll-admin). Empty: nobody is an operator. Relay keys never are. */
  ADMIN_CLAIM: z.string().trim().default(''),
});

/** Every setting, its default and its doc; scripts/settings.ts checks env.template, README and compose against it. */
export const settingsSchema = schema;

/** Who issues the tokens and where their keys are. */
export type AuthSource =
  | { mode: 'jwks'; issuer: string; audience: string; jwksUri: string }
  | { mode: 'dev'; issuer: string; audience: string; keyDir: string };

export type AuthConfig = AuthSource & AuthLimits;

/** How tokens are checked, whichever the identity provider. */
export interface AuthLimits {
  jwksRefreshIntervalMs: number;
  jwksCacheMaxAgeMs: number;
  maxLifetimeS: number;
}

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  publicUrl?: string;
  dataDir: string;
  logLevel: string;
  auth: AuthConfig;
  /** Device login and web console sign-in settings served at GET /api/auth/config. */
  signIn: { deviceClientId?: string; scopes: string[]; webClientId?: string };
  databaseUrl?: string;
  audit: {
    poolSize: number;
    connectTimeoutMs: number;
    startupTimeoutMs: number;
    migrationsDir: string;
    batchSize: number;
    flushIntervalMs: number;
    queueMax: number;
    retryMaxMs: number;
    pullIntervalMs: number;
    shutdownFlushMs: number;
    securityWindowMs: number;
    securityMaxKeys: number;
    securityQueueMax: number;
    retentionDays: number;
    retentionCron: string;
    idlePullIntervalMs: number;
    pullConcurrency: number;
  };
  proxy: {
    driver: 'process' | 'docker' | 'swarm';
    image: string;
    memoryMb: number;
    cpus: number;
    idleTimeoutMs: number;
    cleanupCron: string;
    subnetPool: string;
    subnetPrefix: number;
    networkMode: 'auto' | 'host' | 'container';
    selfContainer?: string;
    egress: 'internet' | 'none';
    scope: string;
    startTimeoutMs: number;
    /** swarm driver: placement constraints of proxy services. */
    placement: string[];
    memoryCheckMs: number;
    pingIntervalMs: number;
    /** docker driver: how long a running proxy's endpoint is reused without asking the engine. */
    endpointCacheMs: number;
    script: string;
    /** Where proxies reach api-backend; undefined: derived from the listening port (process driver). */
    apiBackendUrl?: string;
  };
  bridge: { pollTimeoutMs: number; graceMs: number; maxQueue: number };
  /** How long a desktop link outlives its expired, unrenewed token (the proxy enforces it). */
  tokenExpiryGraceMs: number;
  /** Requests open at once on one desktop link; enforced by the user's proxy. */
  maxStreamsPerTunnel: number;
  requestTimeoutMs: number;
  maxBodyBytes: number;
  trustProxy: string;
  shutdownGraceMs: number;
  zrok: { shareTtlMs: number; discoveryIntervalMs: number; allowInsecure: boolean; shareDomains: string[] };
  /** The private listener for /metrics and /health/details; port null: none. */
  metrics: { port: number | null; host: string };
  healthCheckIntervalMs: number;
  /** docker driver: how often the driver reconciles with the engine. */
  sweepIntervalMs: number;
  /** Hex key of the proxies' secrets; undefined: the one in DATA_DIR. */
  proxySecretKey?: string;
  /** Per-client-address limits, each per minute. */
  rateLimits: { enabled: boolean; authFailures: number; upgrades: number; health: number };
  /** Enforced by each user's proxy (the same names in its environment). */
  userLimits: { ratePerMinute: number; rateBurst: number; maxStreams: number; maxWsLinks: number; maxPollLinks: number };
  /** Enforced by api-backend: proxies at once, and proxies made for one user a minute. */
  proxyLimits: { max: number; startRatePerMinute: number };
  /** Origins whose browser apps may call the relay (`*`: any); empty: none. */
  corsOrigins: string[];
  /** ADMIN_CLAIM parsed; undefined: nobody is an operator. */
  operatorClaim?: OperatorClaim;
}

export class ConfigError extends Error {}

export const DEV_ISSUER = 'urn:ctll:dev';
export const DEV_AUDIENCE = 'ctll-relay';

export function loadConfig(env: Record<string, string | undefined>, defaults: { proxyScript: string }): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = issue.path.join('.');
      const shown = name === 'DATABASE_URL' ? withoutPassword(env[name] ?? '') : (env[name] ?? '');
      return `  ${name}=${JSON.stringify(shown)}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  const dataDir = path.resolve(c.DATA_DIR);
  return {
    env: c.NODE_ENV,
    port: c.PORT,
    host: c.HOST,
    publicUrl: c.PUBLIC_URL,
    dataDir,
    logLevel: c.LOG_LEVEL,
    auth: { ...authConfig(c, dataDir), ...authLimits(c) },
    signIn: { deviceClientId: c.OIDC_DEVICE_CLIENT_ID, scopes: c.OIDC_SCOPES.split(/\s+/), webClientId: c.OIDC_WEB_CLIENT_ID },
    databaseUrl: c.DATABASE_URL,
    audit: {
      poolSize: c.DATABASE_POOL_SIZE,
      connectTimeoutMs: c.DATABASE_CONNECT_TIMEOUT_MS,
      startupTimeoutMs: c.DATABASE_STARTUP_TIMEOUT_MS,
      // Two levels above this file both in the sources (api-backend/src) and in the bundle
      // (api-backend/dist) is the repository root, or /app in the image.
      migrationsDir: path.resolve(c.AUDIT_MIGRATIONS_DIR ?? path.join(__dirname, '../../postgres/migrations')),
      batchSize: c.AUDIT_BATCH_SIZE,
      flushIntervalMs: c.AUDIT_FLUSH_INTERVAL_MS,
      queueMax: c.AUDIT_QUEUE_MAX,
      retryMaxMs: c.AUDIT_RETRY_MAX_MS,
      pullIntervalMs: c.AUDIT_PULL_INTERVAL_MS,
      shutdownFlushMs: c.AUDIT_SHUTDOWN_FLUSH_MS,
      securityWindowMs: c.AUDIT_SECURITY_WINDOW_MS,
      securityMaxKeys: c.AUDIT_SECURITY_MAX_KEYS,
      securityQueueMax: c.AUDIT_SECURITY_QUEUE_MAX,
      retentionDays: c.AUDIT_RETENTION_DAYS,
      retentionCron: c.AUDIT_RETENTION_CRON,
      idlePullIntervalMs: c.AUDIT_IDLE_PULL_INTERVAL_MS,
      pullConcurrency: c.AUDIT_PULL_CONCURRENCY,
    },
    proxy: {
      driver: c.PROXY_DRIVER,
      image: c.PROXY_IMAGE,
      memoryMb: c.PROXY_MEMORY_MB,
      cpus: c.PROXY_CPUS,
      idleTimeoutMs: c.PROXY_IDLE_TIMEOUT_MS,
      cleanupCron: c.PROXY_CLEANUP_CRON,
      subnetPool: checkedSubnetPool(c.PROXY_SUBNET_POOL, c.PROXY_SUBNET_PREFIX),
      subnetPrefix: c.PROXY_SUBNET_PREFIX,
      networkMode: c.PROXY_NETWORK_MODE,
      selfContainer: c.PROXY_SELF_CONTAINER,
      egress: c.PROXY_EGRESS,
      scope: c.PROXY_SCOPE,
      startTimeoutMs: c.PROXY_START_TIMEOUT_MS,
      placement: c.PROXY_PLACEMENT,
      memoryCheckMs: c.PROXY_MEMORY_CHECK_MS,
      pingIntervalMs: c.PROXY_PING_INTERVAL_MS,
      endpointCacheMs: c.PROXY_ENDPOINT_CACHE_MS,
      script: path.resolve(c.PROXY_SCRIPT ?? defaults.proxyScript),
      apiBackendUrl: c.PROXY_API_BACKEND_URL?.replace(/\/+$/, ''),
    },
    bridge: { pollTimeoutMs: c.BRIDGE_POLL_TIMEOUT_MS, graceMs: c.BRIDGE_GRACE_MS, maxQueue: c.BRIDGE_MAX_QUEUE },
    tokenExpiryGraceMs: c.TOKEN_EXPIRY_GRACE_MS,
    maxStreamsPerTunnel: c.MAX_STREAMS_PER_TUNNEL,
    requestTimeoutMs: c.REQUEST_TIMEOUT_MS,
    maxBodyBytes: c.MAX_BODY_BYTES,
    trustProxy: c.TRUST_PROXY,
    shutdownGraceMs: c.SHUTDOWN_GRACE_MS,
    zrok: zrokConfig(c),
    metrics: { port: c.METRICS_PORT === 'off' ? null : c.METRICS_PORT, host: c.METRICS_HOST },
    healthCheckIntervalMs: c.HEALTH_CHECK_INTERVAL_MS,
    sweepIntervalMs: c.PROXY_SWEEP_INTERVAL_MS,
    proxySecretKey: c.PROXY_SECRET_KEY,
    rateLimits: {
      enabled: c.RATE_LIMIT_ENABLED === 'true',
      authFailures: c.RATE_LIMIT_AUTH_FAILURES,
      upgrades: c.RATE_LIMIT_UPGRADES,
      health: c.RATE_LIMIT_HEALTH,
    },
    userLimits: {
      ratePerMinute: c.USER_RATE_PER_MINUTE,
      rateBurst: c.USER_RATE_BURST,
      maxStreams: c.USER_MAX_STREAMS,
      maxWsLinks: c.USER_MAX_WS_LINKS,
      maxPollLinks: c.USER_MAX_POLL_LINKS,
    },
    proxyLimits: { max: proxyMax(c), startRatePerMinute: c.PROXY_START_RATE_PER_MINUTE },
    corsOrigins: corsOrigins(c.CORS_ORIGINS),
    operatorClaim: operatorClaim(c.ADMIN_CLAIM),
  };
}

function operatorClaim(text: string): OperatorClaim | undefined {
  try {
    return parseOperatorClaim(text);
  } catch (error) {
    throw new ConfigError(`ADMIN_CLAIM=${JSON.stringify(text)}: ${(error as Error).message}`);
  }
}

function corsOrigins(text: string): string[] {
  try {
    return parseCorsOrigins(text);
  } catch (error) {
    throw new ConfigError(`CORS_ORIGINS=${JSON.stringify(text)}: ${(error as Error).message}`);
  }
}

/** Process proxies are Node processes on this host; Docker ones each take a network of the subnet pool. */
const PROXY_MAX_DEFAULT = { process: 200, docker: 1000 } as const;

function proxyMax(c: z.infer<typeof schema>): number {
  if (c.PROXY_DRIVER === 'process') return c.PROXY_MAX ?? PROXY_MAX_DEFAULT.process;
  const networks = new SubnetPool(c.PROXY_SUBNET_POOL, c.PROXY_SUBNET_PREFIX).blocks;
  if (c.PROXY_MAX === undefined) return Math.min(PROXY_MAX_DEFAULT.docker, networks);
  if (c.PROXY_MAX > networks) {
    throw new ConfigError(
      `PROXY_MAX=${c.PROXY_MAX} is more than the ${networks} networks PROXY_SUBNET_POOL=${c.PROXY_SUBNET_POOL} holds in /${c.PROXY_SUBNET_PREFIX} blocks: lower PROXY_MAX or widen the pool`,
    );
  }
  return c.PROXY_MAX;
}

function isPostgresUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'postgres:' || url.protocol === 'postgresql:';
  } catch {
    return false;
  }
}

/** A bad DATABASE_URL is shown back without its password. */
function withoutPassword(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}

function zrokConfig(c: z.infer<typeof schema>): Config['zrok'] {
  const allowInsecure = c.ZROK_ALLOW_INSECURE === 'true';
  if (allowInsecure && c.NODE_ENV === 'production') {
    throw new ConfigError(
      'ZROK_ALLOW_INSECURE=true is refused when NODE_ENV=production: it lets the relay forward to plain-http shares and to private, loopback and link-local addresses',
    );
  }
  let shareDomains: string[];
  try {
    shareDomains = parseShareDomains(c.ZROK_SHARE_DOMAINS);
  } catch (error) {
    throw new ConfigError(`ZROK_SHARE_DOMAINS=${JSON.stringify(c.ZROK_SHARE_DOMAINS)}: ${(error as Error).message}`);
  }
  if (shareDomains.length === 0) throw new ConfigError('ZROK_SHARE_DOMAINS must name at least one host (e.g. share.zrok.io)');
  return { shareTtlMs: c.ZROK_SHARE_TTL_MS, discoveryIntervalMs: c.ZROK_DISCOVERY_INTERVAL_MS, allowInsecure, shareDomains };
}

function checkedSubnetPool(pool: string, prefix: number): string {
  try {
    new SubnetPool(pool, prefix);
  } catch (error) {
    throw new ConfigError(`PROXY_SUBNET_POOL=${JSON.stringify(pool)} with PROXY_SUBNET_PREFIX=${prefix}: ${(error as Error).message}`);
  }
  return pool;
}

function authLimits(c: z.infer<typeof schema>): AuthLimits {
  // A max age below the interval could not be kept: the keys could not be fetched again in time.
  if (c.JWKS_CACHE_MAX_AGE_MS < c.JWKS_REFRESH_INTERVAL_MS) {
    throw new ConfigError(
      `JWKS_CACHE_MAX_AGE_MS=${c.JWKS_CACHE_MAX_AGE_MS} must be at least JWKS_REFRESH_INTERVAL_MS=${c.JWKS_REFRESH_INTERVAL_MS}`,
    );
  }
  return { jwksRefreshIntervalMs: c.JWKS_REFRESH_INTERVAL_MS, jwksCacheMaxAgeMs: c.JWKS_CACHE_MAX_AGE_MS, maxLifetimeS: c.JWT_MAX_LIFETIME_S };
}

function authConfig(c: z.infer<typeof schema>, dataDir: string): AuthSource {
  if (c.AUTH0_DOMAIN) {
    if (!c.AUTH0_AUDIENCE) throw new ConfigError('AUTH0_AUDIENCE is required when AUTH0_DOMAIN is set');
    const domain = c.AUTH0_DOMAIN.replace(/^https?:\/\//, '').replace(/\/+$/, '');
    return {
      mode: 'jwks',
      issuer: `https://${domain}/`,
      audience: c.AUTH0_AUDIENCE,
      jwksUri: `https://${domain}/.well-known/jwks.json`,
    };
  }
  if (c.JWT_ISSUER || c.JWT_AUDIENCE || c.JWT_JWKS_URI) {
    const missing = (['JWT_ISSUER', 'JWT_AUDIENCE', 'JWT_JWKS_URI'] as const).filter((name) => !c[name]);
    if (missing.length > 0) throw new ConfigError(`${missing.join(', ')} must be set together with the other JWT_* settings`);
    return { mode: 'jwks', issuer: c.JWT_ISSUER!, audience: c.JWT_AUDIENCE!, jwksUri: c.JWT_JWKS_URI! };
  }
  if (c.NODE_ENV === 'production') {
    throw new ConfigError(
      'NODE_ENV=production needs a real identity provider: set AUTH0_DOMAIN and AUTH0_AUDIENCE, or JWT_ISSUER, JWT_AUDIENCE and JWT_JWKS_URI (dev auth is refused in production)',
    );
  }
  return { mode: 'dev', issuer: DEV_ISSUER, audience: DEV_AUDIENCE, keyDir: path.join(dataDir, 'dev-auth') };
}
