/**
 * api-backend's edge reduced to its relay, for tests that call a proxy the way another api-backend
 * would: every request to this server goes to the proxy at `endpoint` over one frame link, through
 * api-backend's own frame relay, with its path and query as the desktop's.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../api-backend/src/logger';
import type { ProxyEndpoint } from '../../api-backend/src/proxy/driver';
import { ProxyLinkPool } from '../../api-backend/src/relay/proxy-link';
import { relayFrames } from '../../api-backend/src/relay/frame-relay';

export interface FrameEdge {
  url: string;
  close(): Promise<void>;
}

export async function startFrameEdge(endpoint: ProxyEndpoint, maxBodyBytes: number): Promise<FrameEdge> {
  const pool = new ProxyLinkPool({ openTimeoutMs: 5000, logger: createLogger('error') });
  const server = http.createServer((req, res) => {
    pool.get(endpoint).then(
      (link) => relayFrames(req, res, link, req.url ?? '/', { maxBodyBytes, silenceTimeoutMs: 30_000, onBytes: () => undefined }),
      () => res.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      pool.close();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
