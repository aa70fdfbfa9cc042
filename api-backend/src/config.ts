/**
 * The api-backend's one validated config object. This module (and main.ts, which hands it the
 * environment) is the only reader of process.env; every other module receives what it needs.
 * A bad value stops start-up with the variable's name and what was expected.
 */
import path from 'node:path';
import cron from 'node-cron';
import { z } from 'zod';

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

  DATABASE_URL: optionalString,

  PROXY_DRIVER: z.enum(['process', 'docker']).default('process'),
  PROXY_IMAGE: z.string().min(1).default('ctll/streaming-proxy:latest'),
  PROXY_MEMORY_MB: z.coerce.number().int().min(32).max(65536).default(512),
  PROXY_CPUS: z.coerce.number().positive().max(64).default(0.5),
  PROXY_IDLE_TIMEOUT_MS: z.coerce.number().int().positive().default(600_000),
  PROXY_CLEANUP_CRON: z.string().min(1).refine((v) => cron.validate(v), 'must be a cron expression').default('* * * * *'),
  PROXY_SUBNET_POOL: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'must be a CIDR like 10.200.0.0/16').default('10.200.0.0/16'),
  PROXY_START_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),
  PROXY_PING_INTERVAL_MS: z.coerce.number().int().positive().default(15_000),
  /** Path of the bundled streaming-proxy the process driver runs. */
  PROXY_SCRIPT: z.string().min(1).optional(),

  /** Long-poll transport: an empty poll is answered after this long. */
  BRIDGE_POLL_TIMEOUT_MS: z.coerce.number().int().positive().default(25_000),
  /** Long-poll transport: a bridge that stops polling and heartbeating is dropped after this long. */
  BRIDGE_GRACE_MS: z.coerce.number().int().positive().default(30_000),
  /** Long-poll transport: requests waiting for one bridge before new ones get 503. */
  BRIDGE_MAX_QUEUE: z.coerce.number().int().positive().default(64),

  REQUEST_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(100 * 1024 * 1024),
  /** Express `trust proxy`: which hops may set X-Forwarded-For (e.g. nginx's network). */
  TRUST_PROXY: z.string().default('loopback'),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().nonnegative().default(10_000),
});

export type AuthConfig =
  | { mode: 'jwks'; issuer: string; audience: string; jwksUri: string }
  | { mode: 'dev'; issuer: string; audience: string; keyDir: string };

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  publicUrl?: string;
  dataDir: string;
  logLevel: string;
  auth: AuthConfig;
  databaseUrl?: string;
  proxy: {
    driver: 'process' | 'docker';
    image: string;
    memoryMb: number;
    cpus: number;
    idleTimeoutMs: number;
    cleanupCron: string;
    subnetPool: string;
    startTimeoutMs: number;
    pingIntervalMs: number;
    script: string;
  };
  bridge: { pollTimeoutMs: number; graceMs: number; maxQueue: number };
  requestTimeoutMs: number;
  maxBodyBytes: number;
  trustProxy: string;
  shutdownGraceMs: number;
}

export class ConfigError extends Error {}

export const DEV_ISSUER = 'urn:ctll:dev';
export const DEV_AUDIENCE = 'ctll-relay';

export function loadConfig(env: Record<string, string | undefined>, defaults: { proxyScript: string }): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = issue.path.join('.');
      return `  ${name}=${JSON.stringify(env[name] ?? '')}: ${issue.message}`;
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
    auth: authConfig(c, dataDir),
    databaseUrl: c.DATABASE_URL,
    proxy: {
      driver: c.PROXY_DRIVER,
      image: c.PROXY_IMAGE,
      memoryMb: c.PROXY_MEMORY_MB,
      cpus: c.PROXY_CPUS,
      idleTimeoutMs: c.PROXY_IDLE_TIMEOUT_MS,
      cleanupCron: c.PROXY_CLEANUP_CRON,
      subnetPool: c.PROXY_SUBNET_POOL,
      startTimeoutMs: c.PROXY_START_TIMEOUT_MS,
      pingIntervalMs: c.PROXY_PING_INTERVAL_MS,
      script: path.resolve(c.PROXY_SCRIPT ?? defaults.proxyScript),
    },
    bridge: { pollTimeoutMs: c.BRIDGE_POLL_TIMEOUT_MS, graceMs: c.BRIDGE_GRACE_MS, maxQueue: c.BRIDGE_MAX_QUEUE },
    requestTimeoutMs: c.REQUEST_TIMEOUT_MS,
    maxBodyBytes: c.MAX_BODY_BYTES,
    trustProxy: c.TRUST_PROXY,
    shutdownGraceMs: c.SHUTDOWN_GRACE_MS,
  };
}

function authConfig(c: z.infer<typeof schema>, dataDir: string): AuthConfig {
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
