/**
 * The environment a streaming-proxy starts with: the one contract between api-backend, which
 * writes it (writeProxyEnv), and the proxy, which reads it (parseProxyEnv). A setting the proxy
 * enforces has the same name here as in api-backend's settings, so an operator's value reaches
 * the proxy unchanged. The defaults apply only to a proxy started by hand: api-backend writes
 * every entry, and a test holds these defaults equal to api-backend's.
 */
import { z } from 'zod';
import { DEFAULT_SHARE_DOMAINS, parseShareDomains } from './share-domains';

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

export const proxyEnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** 127.0.0.1 for the process driver; 0.0.0.0 inside a container, on the user's own network. */
  HOST: z.string().min(1).default('0.0.0.0'),
  /** Shared with api-backend only: every call but /health must carry it. */
  PROXY_SECRET: z.string().min(32, 'must be at least 32 characters'),
  /** The owner's hashed id, for log lines; the proxy never learns the raw user id. */
  PROXY_USER_HASH: z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 hex characters').optional(),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  REQUEST_TIMEOUT_MS: positiveInt(30_000),
  /** Pings down each WebSocket tunnel; a desktop that misses one is dropped. */
  PROXY_PING_INTERVAL_MS: positiveInt(15_000),
  /** Requests open at once on one desktop link (a share counts as one); one more gets 429. */
  MAX_STREAMS_PER_TUNNEL: positiveInt(256),
  /** Long-poll: how long an empty poll is held before it is answered with 204. */
  BRIDGE_POLL_TIMEOUT_MS: positiveInt(25_000),
  /** Long-poll: a bridge with no poll open and no sign of life for this long is dropped. */
  BRIDGE_GRACE_MS: positiveInt(30_000),
  /** Long-poll: requests queued for one bridge before new ones are refused with 503. */
  BRIDGE_MAX_QUEUE: positiveInt(64),
  /** Per-user limits (the proxy serves one user): requests and new desktop links a minute, sustained. */
  USER_RATE_PER_MINUTE: positiveInt(600),
  /** Per-user limits: requests (and new links) allowed at once on top of the sustained rate. */
  USER_RATE_BURST: positiveInt(120),
  /** Per-user limits: requests relayed at once, over all of the user's desktop links and shares. */
  USER_MAX_STREAMS: positiveInt(100),
  /** Per-user limits: WebSocket tunnels open at once; one more is refused with 429. */
  USER_MAX_WS_LINKS: positiveInt(4),
  /** Per-user limits: polling bridges registered at once; one more is refused with 429. */
  USER_MAX_POLL_LINKS: positiveInt(4),
  /** A desktop link whose credential expired and was not renewed is closed this long after (4401). */
  TOKEN_EXPIRY_GRACE_MS: z.coerce.number().int().min(0).default(30_000),
  /** Largest request body relayed to the desktop (api-backend checks the same number first). */
  MAX_BODY_BYTES: positiveInt(100 * 1024 * 1024),
  /** zrok shares: where to ask api-backend for the user's shares; unset turns share discovery off. */
  PROXY_API_BACKEND_URL: z
    .string()
    .url()
    .transform((url) => url.replace(/\/+$/, ''))
    .optional()
    .or(z.literal('').transform(() => undefined)),
  /** zrok shares: how often to pull the user's shares and health-check them. */
  ZROK_DISCOVERY_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000),
  /** zrok shares: also connect over plain http and to non-public addresses (api-backend refuses it in production). */
  ZROK_ALLOW_INSECURE: z
    .enum(['true', 'false'], { message: 'must be true or false' })
    .default('false')
    .transform((value) => value === 'true'),
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
  /**
   * Tests only: the protocol version this proxy claims to speak instead of its own, so a test can
   * run a real proxy that looks like one from another release. api-backend never writes it.
   */
  TEST_PROTOCOL_VERSION: z.coerce.number().int().positive().optional(),
});

/** The proxy's settings, parsed. */
export type ProxyEnv = z.output<typeof proxyEnvSchema>;

export class ProxyEnvError extends Error {}

/** Reads a proxy's environment; a bad entry throws naming it. Entries outside the contract are ignored. */
export function parseProxyEnv(env: Record<string, string | undefined>): ProxyEnv {
  const parsed = proxyEnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ProxyEnvError(`invalid proxy environment\n${lines.join('\n')}`);
  }
  return parsed.data;
}

/**
 * The environment that hands `values` to a proxy: every entry of the contract, checked by the
 * parser the proxy runs, so a value the proxy would refuse fails here, before a start.
 */
export function writeProxyEnv(values: ProxyEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue;
    env[name] = Array.isArray(value) ? value.join(',') : String(value);
  }
  parseProxyEnv(env);
  return env;
}
