/**
 * api-backend's side of the api-backend → proxy hop: one keep-alive connection pool for all
 * proxies (no TCP handshake per relayed request), TCP_NODELAY on every socket, and the small
 * JSON calls the manager makes.
 */
import http from 'node:http';
import type { ProxyEndpoint } from './driver';

import { PROXY_SECRET_HEADER, TUNNELS_RECONNECT_PATH, type JournalPage, type ProxyStatus } from '@ctll/protocol';

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
    return this.getJson<ProxyStatus>(endpoint, '/status', timeoutMs);
  }

  /** The proxy's journal after sequence number `after`, oldest first (the audit collector's pull). */
  async events(endpoint: ProxyEndpoint, after: number, timeoutMs = 3000): Promise<JournalPage> {
    const page = (await this.getJson<Partial<JournalPage> | null>(endpoint, `/events?after=${after}`, timeoutMs)) ?? {};
    return { events: Array.isArray(page.events) ? page.events : [], lastSeq: Number(page.lastSeq) || 0, dropped: Number(page.dropped) || 0 };
  }

  /** api-backend is restarting: the proxy closes its WebSocket tunnels with 1012 (see TUNNELS_RECONNECT_PATH). */
  reconnectTunnels(endpoint: ProxyEndpoint, timeoutMs = 2000): Promise<{ closed: number }> {
    return this.getJson<{ closed: number }>(endpoint, TUNNELS_RECONNECT_PATH, timeoutMs, 'POST');
  }

  private getJson<T>(endpoint: ProxyEndpoint, path: string, timeoutMs: number, method = 'GET'): Promise<T> {
    const what = path.split('?')[0].slice(1);
    return new Promise((resolve, reject) => {
      const req = this.request(endpoint, { method, path, timeout: timeoutMs });
      req.on('timeout', () => req.destroy(new Error(`proxy ${what} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`proxy ${what} answered ${res.statusCode}`));
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T);
          } catch (error) {
            reject(error as Error);
          }
        });
      });
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
