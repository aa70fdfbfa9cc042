/**
 * The proxy's one validated config. Only this module and main.ts read the environment; a bad
 * value stops start-up with a message naming the variable.
 */
import { z } from 'zod';
import { DEFAULT_SHARE_DOMAINS, parseShareDomains } from '@ctll/protocol';

const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** 127.0.0.1 for the process driver; 0.0.0.0 inside a container, on the user's own network. */
  HOST: z.string().min(1).default('0.0.0.0'),
  /** Shared with api-backend only: every call but /health must carry it. */
  PROXY_SECRET: z.string().min(32, 'must be at least 32 characters'),
  /** The owner's hashed id, for log lines; the proxy never learns the raw user id. */
  PROXY_USER_HASH: z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 hex characters').optional(),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  REQUEST_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  PING_INTERVAL_MS: z.coerce.number().int().positive().default(15_000),
  MAX_STREAMS_PER_TUNNEL: z.coerce.number().int().positive().default(256),
  /** Long-poll: how long an empty poll is held before it is answered with 204. */
  POLL_TIMEOUT_MS: z.coerce.number().int().positive().default(25_000),
  /** Long-poll: a bridge with no poll open and no sign of life for this long is dropped. */
  POLL_GRACE_MS: z.coerce.number().int().positive().default(30_000),
  /** Long-poll: requests queued for one bridge before new ones are refused with 503. */
  POLL_MAX_QUEUED: z.coerce.number().int().positive().default(64),
  /** Per-user limits (the proxy serves one user): requests and new desktop links a minute, sustained. */
  USER_RATE_PER_MINUTE: z.coerce.number().int().positive().default(600),
  /** Per-user limits: requests (and new links) allowed at once on top of the sustained rate. */
  USER_RATE_BURST: z.coerce.number().int().positive().default(120),
  /** Per-user limits: requests relayed at once, over all of the user's desktop links and shares. */
  USER_MAX_STREAMS: z.coerce.number().int().positive().default(100),
  /** Per-user limits: WebSocket tunnels open at once; one more is refused with 429. */
  USER_MAX_WS_LINKS: z.coerce.number().int().positive().default(4),
  /** Per-user limits: polling bridges registered at once; one more is refused with 429. */
  USER_MAX_POLL_LINKS: z.coerce.number().int().positive().default(4),
  /** A desktop link whose credential expired and was not renewed is closed this long after (4401). */
  TOKEN_EXPIRY_GRACE_MS: z.coerce.number().int().min(0).default(30_000),
  /** Largest request body relayed to the desktop (api-backend checks the same number first). */
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(100 * 1024 * 1024),
  /** zrok shares: where to ask api-backend for the user's shares; unset turns share discovery off. */
  API_BACKEND_URL: z.string().url().optional().or(z.literal('').transform(() => undefined)),
  /** zrok shares: how often to pull the user's shares and health-check them. */
  ZROK_DISCOVERY_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000),
  /** zrok shares: also connect over plain http and to non-public addresses (api-backend refuses it in production). */
  ZROK_ALLOW_INSECURE: z.enum(['true', 'false'], { message: 'must be true or false' }).default('false'),
  /** zrok shares: the hosts (and their subdomains) the proxy may connect to; api-backend passes its own list. */
  ZROK_SHARE_DOMAINS: z
    .string()
    .default(DEFAULT_SHARE_DOMAINS.join(','))
    .transform((list, ctx) => {
      try {
        return parseShareDomains(list);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    }),
});

export interface ProxyConfig {
  port: number;
  host: string;
  secret: string;
  userHash: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  requestTimeoutMs: number;
  pingIntervalMs: number;
  maxStreamsPerTunnel: number;
  pollTimeoutMs: number;
  pollGraceMs: number;
  pollMaxQueued: number;
  tokenExpiryGraceMs: number;
  zrok: { apiBackendUrl?: string; discoveryIntervalMs: number; allowInsecure: boolean; shareDomains: string[] };
  limits: UserLimitSettings;
}

export interface UserLimitSettings {
  ratePerMinute: number;
  rateBurst: number;
  maxStreams: number;
  maxWsLinks: number;
  maxPollLinks: number;
  maxBodyBytes: number;
}

export function loadConfig(env: Record<string, string | undefined>): ProxyConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`streaming-proxy: invalid configuration\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  return {
    port: c.PORT,
    host: c.HOST,
    secret: c.PROXY_SECRET,
    userHash: c.PROXY_USER_HASH ?? 'unknown',
    logLevel: c.LOG_LEVEL,
    requestTimeoutMs: c.REQUEST_TIMEOUT_MS,
    pingIntervalMs: c.PING_INTERVAL_MS,
    maxStreamsPerTunnel: c.MAX_STREAMS_PER_TUNNEL,
    pollTimeoutMs: c.POLL_TIMEOUT_MS,
    pollGraceMs: c.POLL_GRACE_MS,
    pollMaxQueued: c.POLL_MAX_QUEUED,
    tokenExpiryGraceMs: c.TOKEN_EXPIRY_GRACE_MS,
    zrok: {
      apiBackendUrl: c.API_BACKEND_URL?.replace(/\/+$/, ''),
      discoveryIntervalMs: c.ZROK_DISCOVERY_INTERVAL_MS,
      allowInsecure: c.ZROK_ALLOW_INSECURE === 'true',
      shareDomains: c.ZROK_SHARE_DOMAINS,
    },
    limits: {
      ratePerMinute: c.USER_RATE_PER_MINUTE,
      rateBurst: c.USER_RATE_BURST,
      maxStreams: c.USER_MAX_STREAMS,
      maxWsLinks: c.USER_MAX_WS_LINKS,
      maxPollLinks: c.USER_MAX_POLL_LINKS,
      maxBodyBytes: c.MAX_BODY_BYTES,
    },
  };
}
