/**
 * api-backend's side of the api-backend → proxy hop: one keep-alive connection pool for all
 * proxies (no TCP handshake per relayed request), TCP_NODELAY on every socket, and the small
 * JSON calls the manager makes.
 */
import http from 'node:http';
import type { ProxyEndpoint } from './driver';

import type { z } from 'zod';
import {
  journalPageSchema,
  KEY_REVOKED_PATH,
  keyRevokedAnswerSchema,
  parseProxyAnswer,
  PROXY_SECRET_HEADER,
  PROXY_USAGE_PATH,
  RELAY_INSTANCE_HEADER,
  proxyStatusSchema,
  proxyUsageSchema,
  reconnectAnswerSchema,
  TUNNELS_RECONNECT_PATH,
  type JournalPage,
  type KeyRevokedAnswer,
  type ProxyStatus,
  type ProxyUsage,
  type ReconnectAnswer,
} from '@ctll/protocol';

export const SECRET_HEADER = PROXY_SECRET_HEADER;
export type { JournalEvent, JournalPage, ProxyStatus } from '@ctll/protocol';

export class ProxyClient {
  readonly agent = new http.Agent({
    keepAlive: true,
    // Reuse the warmest socket first; idle ones age out before the proxy's 65 s keep-alive ends.
    scheduling: 'lifo',
    maxSockets: Infinity,
    maxFreeSockets: 256,
    timeout: 60_000,
  });

  constructor() {
    this.agent.on('free', (socket) => socket.setNoDelay(true));
  }

  request(endpoint: ProxyEndpoint, options: http.RequestOptions): http.ClientRequest {
    const req = http.request({
      ...options,
      host: endpoint.host,
      port: endpoint.port,
      agent: this.agent,
      headers: { ...options.headers, [SECRET_HEADER]: endpoint.secret },
    });
    req.on('socket', (socket) => socket.setNoDelay(true));
    return req;
  }

  status(endpoint: ProxyEndpoint, timeoutMs = 3000): Promise<ProxyStatus> {
    return this.getJson(proxyStatusSchema, endpoint, '/status', timeoutMs);
  }

  /** The user's traffic today and per minute over the last hour (GET /api/me/usage). */
  usage(endpoint: ProxyEndpoint, timeoutMs = 3000): Promise<ProxyUsage> {
    return this.getJson(proxyUsageSchema, endpoint, PROXY_USAGE_PATH, timeoutMs);
  }

  /** The proxy's journal after sequence number `after`, oldest first (the audit collector's pull). */
  events(endpoint: ProxyEndpoint, after: number, timeoutMs = 3000): Promise<JournalPage> {
    return this.getJson(journalPageSchema, endpoint, `/events?after=${after}`, timeoutMs);
  }

  /**
   * This api-backend process (`relay`, its RELAY_INSTANCE_HEADER id) is restarting: the proxy closes
   * the WebSocket tunnels relayed through it with 1012 (see TUNNELS_RECONNECT_PATH).
   */
  reconnectTunnels(endpoint: ProxyEndpoint, relay: string, timeoutMs = 2000): Promise<ReconnectAnswer> {
    return this.getJson(reconnectAnswerSchema, endpoint, TUNNELS_RECONNECT_PATH, timeoutMs, 'POST', undefined, { [RELAY_INSTANCE_HEADER]: relay });
  }

  /** A relay key of the proxy's owner was revoked: the proxy closes the links it opened (see KEY_REVOKED_PATH). */
  keyRevoked(endpoint: ProxyEndpoint, keyId: string, timeoutMs = 2000): Promise<KeyRevokedAnswer> {
    return this.getJson(keyRevokedAnswerSchema, endpoint, KEY_REVOKED_PATH, timeoutMs, 'POST', JSON.stringify({ keyId }));
  }

  /** A JSON answer of the proxy, parsed with its protocol schema (a drifted proxy is an error, not a cast). */
  private getJson<T>(
    schema: z.ZodType<T>,
    endpoint: ProxyEndpoint,
    path: string,
    timeoutMs: number,
    method = 'GET',
    body?: string,
    extraHeaders: Record<string, string> = {},
  ): Promise<T> {
    const what = path.split('?')[0].slice(1);
    return new Promise((resolve, reject) => {
      const headers = { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...extraHeaders };
      const req = this.request(endpoint, { method, path, timeout: timeoutMs, headers });
      req.on('timeout', () => req.destroy(new Error(`proxy ${what} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`proxy ${what} answered ${res.statusCode}`));
          try {
            resolve(parseProxyAnswer(schema, what, Buffer.concat(chunks).toString('utf8')));
          } catch (error) {
            reject(error as Error);
          }
        });
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
