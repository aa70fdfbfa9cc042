/**
 * The private listener (METRICS_PORT on METRICS_HOST): `/metrics` and `/health/details` for the
 * operator's scraper, on a port of its own so nginx, which proxies only the public port, can
 * never pass a stranger's request to them.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Router } from 'express';
import { NotFoundError } from '@ctll/protocol';
import { errorHandler } from './error-handler';
import type { Logger } from '../logger';

export interface PrivateListener {
  url: string;
  close(): void;
}

export async function startPrivateListener(options: { host: string; port: number }, routes: Router, logger: Logger): Promise<PrivateListener> {
  const app = express();
  app.disable('x-powered-by');
  app.use(routes);
  app.use((req, _res, next) => next(new NotFoundError(`no route ${req.method} ${req.path}`)));
  app.use(errorHandler(logger));
  const server = http.createServer(app);
  await listen(server, options.port, options.host);
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    close() {
      server.close();
      server.closeAllConnections();
    },
  };
}

/** Resolves once `server` listens; a busy port rejects instead of crashing the process. */
export function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
