/**
 * Several api-backend replicas as an operator runs them: the built api-backend as separate
 * processes sharing one PostgreSQL database (DATABASE_URL), one DATA_DIR (so the same dev signing
 * keys and proxy secret key, as a shared volume or PROXY_SECRET_KEY would give them), the docker
 * driver (or the swarm driver, PROXY_DRIVER=swarm in `env`) with one PROXY_SCOPE, and one real
 * nginx whose upstream lists every replica. Each replica
 * can be stopped (SIGTERM, graceful), killed (SIGKILL) and started again on its own port.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from './postgres';
import { nginxRequest, startNginx, type Nginx, type NginxResponse, type RequestOptions } from './nginx';
import { freePort, startRelayProcess, type RelayProcess } from './relay-process';
import { startLlmServer, type LlmServer, type LlmServerOptions } from './llm-server';
import { readMetric } from './metrics';
import { PROXY_IMAGE } from '../docker/require-docker';
import { removeScope } from '../docker/support';

export interface Replica {
  port: number;
  metricsPort: number;
  /** The running process; replaced by start(). */
  process: RelayProcess;
  /** SIGTERM and wait for the exit; resolves with the exit code. */
  stop(): Promise<number | string>;
  kill(): Promise<void>;
  /** Starts it again on the same ports. */
  start(): Promise<void>;
  /** A counter from its /metrics, summed over the labels that match `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export interface Replicas {
  replicas: Replica[];
  nginx: Nginx;
  db: TestDatabase;
  llm: LlmServer;
  scope: string;
  dataDir: string;
  token(userId: string): string;
  /** A request as the user through nginx (any replica). */
  viaNginx(userId: string, pathname: string, options?: RequestOptions): Promise<NginxResponse>;
  /** A request as the user straight to one replica, with a JSON body if any; its answer parsed. */
  viaReplica(index: number, userId: string, method: string, pathname: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startReplicas(options: { count: number; env?: Record<string, string>; llm?: LlmServerOptions }): Promise<Replicas> {
  const scope = `test-${randomBytes(4).toString('hex')}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-replicas-'));
  const db = await createTestDatabase();
  const llm = await startLlmServer(options.llm);
  const env = {
    PROXY_DRIVER: 'docker',
    PROXY_SCOPE: scope,
    PROXY_IMAGE,
    PROXY_MEMORY_MB: '128',
    DATABASE_URL: db.url,
    LOG_LEVEL: process.env.CTLL_TEST_LOG_LEVEL ?? 'info',
    ...(options.env ?? {}),
  };
  const replicas: Replica[] = [];
  // One after the other: the first makes the signing keys and the proxy secret key in DATA_DIR.
  for (let i = 0; i < options.count; i++) {
    const port = await freePort();
    const metricsPort = await freePort();
    const launch = () => startRelayProcess({ ...env, METRICS_PORT: String(metricsPort) }, dataDir, port);
    const replica: Replica = {
      port,
      metricsPort,
      process: await launch(),
      async stop() {
        replica.process.child.kill('SIGTERM');
        return replica.process.exited;
      },
      kill: () => replica.process.kill(),
      async start() {
        replica.process = await launch();
      },
      metric: (name, labels = {}) => readMetric(`http://127.0.0.1:${metricsPort}`, name, labels),
    };
    replicas.push(replica);
  }
  const [first, ...rest] = replicas.map((replica) => `127.0.0.1:${replica.port}`);
  const nginx = await startNginx({ upstream: first, moreUpstreams: rest });
  const token = (userId: string) => replicas[0].process.token(userId);
  return {
    replicas,
    nginx,
    db,
    llm,
    scope,
    dataDir,
    token,
    viaNginx: (userId, pathname, requestOptions = {}) =>
      nginxRequest(`${nginx.url}${pathname}`, { ca: nginx.ca, ...requestOptions, headers: { authorization: `Bearer ${token(userId)}`, ...requestOptions.headers } }),
    async viaReplica(index, userId, method, pathname, body) {
      const res = await fetch(`${replicas[index].process.url}${pathname}`, {
        method,
        headers: { authorization: `Bearer ${token(userId)}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    async close() {
      await nginx.close();
      await Promise.all(replicas.map((replica) => replica.kill()));
      // Docker and swarm proxies outlive api-backend on purpose; this relay has no next start.
      await removeScope(scope);
      await llm.close();
      await db.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
