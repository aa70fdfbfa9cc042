/**
 * The environment a streaming-proxy starts with, the same for every driver: the contract of
 * protocol/src/proxy-env.ts, under the names of api-backend's own settings. It holds only what
 * the proxy needs: never the database URL, identity-provider settings or any other secret of ours.
 */
import { writeProxyEnv } from '@ctll/protocol';
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
    ...writeProxyEnv({
      HOST: input.host,
      PORT: input.port,
      PROXY_SECRET: input.secret,
      PROXY_USER_HASH: input.ownerHash,
      LOG_LEVEL: config.logLevel === 'http' ? 'info' : (config.logLevel as 'error' | 'warn' | 'info' | 'debug'),
      REQUEST_TIMEOUT_MS: config.requestTimeoutMs,
      PROXY_PING_INTERVAL_MS: config.proxy.pingIntervalMs,
      MAX_STREAMS_PER_TUNNEL: config.maxStreamsPerTunnel,
      BRIDGE_POLL_TIMEOUT_MS: config.bridge.pollTimeoutMs,
      BRIDGE_GRACE_MS: config.bridge.graceMs,
      BRIDGE_MAX_QUEUE: config.bridge.maxQueue,
      PROXY_API_BACKEND_URL: input.apiBackendUrl ?? config.proxy.apiBackendUrl,
      ZROK_DISCOVERY_INTERVAL_MS: config.zrok.discoveryIntervalMs,
      ZROK_ALLOW_INSECURE: config.zrok.allowInsecure,
      ZROK_SHARE_DOMAINS: config.zrok.shareDomains,
      USER_RATE_PER_MINUTE: config.userLimits.ratePerMinute,
      USER_RATE_BURST: config.userLimits.rateBurst,
      USER_MAX_STREAMS: config.userLimits.maxStreams,
      USER_MAX_WS_LINKS: config.userLimits.maxWsLinks,
      USER_MAX_POLL_LINKS: config.userLimits.maxPollLinks,
      MAX_BODY_BYTES: config.maxBodyBytes,
      TOKEN_EXPIRY_GRACE_MS: config.tokenExpiryGraceMs,
    }),
  };
}
