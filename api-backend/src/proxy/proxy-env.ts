/**
 * The environment a streaming-proxy starts with, the same for every driver. It holds only what
 * the proxy needs: never the database URL, identity-provider settings or any other secret of ours.
 */
import type { Config } from '../config';

export interface ProxyEnvInput {
  ownerHash: string;
  secret: string;
  host: string;
  port: number;
  /** How this proxy reaches api-backend (zrok discovery); wins over PROXY_API_BACKEND_URL. With neither, the proxy never looks for shares. */
  apiBackendUrl?: string;
}

export function proxyEnv(config: Config, input: ProxyEnvInput): Record<string, string> {
  return {
    NODE_ENV: 'production',
    HOST: input.host,
    PORT: String(input.port),
    PROXY_SECRET: input.secret,
    PROXY_USER_HASH: input.ownerHash,
    LOG_LEVEL: config.logLevel === 'http' ? 'info' : config.logLevel,
    REQUEST_TIMEOUT_MS: String(config.requestTimeoutMs),
    PING_INTERVAL_MS: String(config.proxy.pingIntervalMs),
    POLL_TIMEOUT_MS: String(config.bridge.pollTimeoutMs),
    POLL_GRACE_MS: String(config.bridge.graceMs),
    POLL_MAX_QUEUED: String(config.bridge.maxQueue),
    TOKEN_EXPIRY_GRACE_MS: String(config.tokenExpiryGraceMs),
    ...apiBackend(input.apiBackendUrl ?? config.proxy.apiBackendUrl),
    ZROK_DISCOVERY_INTERVAL_MS: String(config.zrok.discoveryIntervalMs),
    ZROK_ALLOW_INSECURE: String(config.zrok.allowInsecure),
    ZROK_SHARE_DOMAINS: config.zrok.shareDomains.join(','),
    // The user's own limits, under the names the proxy reads.
    USER_RATE_PER_MINUTE: String(config.userLimits.ratePerMinute),
    USER_RATE_BURST: String(config.userLimits.rateBurst),
    USER_MAX_STREAMS: String(config.userLimits.maxStreams),
    USER_MAX_WS_LINKS: String(config.userLimits.maxWsLinks),
    USER_MAX_POLL_LINKS: String(config.userLimits.maxPollLinks),
    MAX_BODY_BYTES: String(config.maxBodyBytes),
  };
}

function apiBackend(url: string | undefined): Record<string, string> {
  return url ? { API_BACKEND_URL: url } : {};
}
