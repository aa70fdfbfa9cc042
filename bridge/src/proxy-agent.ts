/**
 * The agent that carries the relay connection through the proxy proxy.ts chose: a CONNECT tunnel
 * for an http:/https: proxy, a SOCKS handshake for socks4/socks5 ones. Both keep the TLS to the
 * relay end to end; `options` (keep-alive pooling) apply to either.
 */
import type { AgentOptions } from 'node:http';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { SocksProxyAgent } from 'socks-proxy-agent';

export type ProxyAgent = HttpsProxyAgent<string> | SocksProxyAgent;

export function proxyAgentFor(proxyUrl: URL, options?: AgentOptions): ProxyAgent {
  return proxyUrl.protocol.startsWith('socks') ? new SocksProxyAgent(proxyUrl, options) : new HttpsProxyAgent(proxyUrl, options);
}
