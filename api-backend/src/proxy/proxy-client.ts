/**
 * api-backend's side of the api-backend → proxy hop: one keep-alive connection pool for all
 * proxies (no TCP handshake per relayed request), TCP_NODELAY on every socket, and the small
 * JSON calls the manager makes.
 */
import http from 'node:http';
import type { ProxyEndpoint } from './driver';

export const SECRET_HEADER = 'x-ctll-proxy-secret';

export interface ProxyStatus {
  status: string;
  startedAt: string;
  transport: 'ws' | 'poll' | null;
  desktops: Array<{ id: string; transport: string; connectedAt: string; client: string; activeStreams: number }>;
  activeRequests: number;
  requests: number;
  bytesToDesktop: number;
  bytesFromDesktop: number;
  lastActivityAt: string;
}

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
    return new Promise((resolve, reject) => {
      const req = this.request(endpoint, { method: 'GET', path: '/status', timeout: timeoutMs });
      req.on('timeout', () => req.destroy(new Error(`proxy status timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`proxy status answered ${res.statusCode}`));
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ProxyStatus);
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
