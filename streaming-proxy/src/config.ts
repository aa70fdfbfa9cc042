/**
 * The proxy's one validated config. Only this module and main.ts read the environment; a bad
 * value stops start-up with a message naming the variable. What the environment holds is the
 * contract in protocol/src/proxy-env.ts, which api-backend writes.
 */
import { parseProxyEnv, PROTOCOL_VERSION } from '@ctll/protocol';

export interface ProxyConfig {
  port: number;
  host: string;
  secret: string;
  userHash: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** What GET /health reports: PROTOCOL_VERSION, unless a test overrides it. */
  protocolVersion: number;
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

/** The contract's names (protocol/src/proxy-env.ts) are api-backend's; these are the proxy's own. */
export function loadConfig(env: Record<string, string | undefined>): ProxyConfig {
  let c;
  try {
    c = parseProxyEnv(env);
  } catch (error) {
    throw new Error(`streaming-proxy: ${(error as Error).message}`);
  }
  return {
    port: c.PORT,
    host: c.HOST,
    secret: c.PROXY_SECRET,
    userHash: c.PROXY_USER_HASH ?? 'unknown',
    logLevel: c.LOG_LEVEL,
    protocolVersion: c.TEST_PROTOCOL_VERSION ?? PROTOCOL_VERSION,
    requestTimeoutMs: c.REQUEST_TIMEOUT_MS,
    pingIntervalMs: c.PROXY_PING_INTERVAL_MS,
    maxStreamsPerTunnel: c.MAX_STREAMS_PER_TUNNEL,
    pollTimeoutMs: c.BRIDGE_POLL_TIMEOUT_MS,
    pollGraceMs: c.BRIDGE_GRACE_MS,
    pollMaxQueued: c.BRIDGE_MAX_QUEUE,
    tokenExpiryGraceMs: c.TOKEN_EXPIRY_GRACE_MS,
    zrok: {
      apiBackendUrl: c.PROXY_API_BACKEND_URL,
      discoveryIntervalMs: c.ZROK_DISCOVERY_INTERVAL_MS,
      allowInsecure: c.ZROK_ALLOW_INSECURE,
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
