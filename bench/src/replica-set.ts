/**
 * api-backend replicas behind one real nginx, as an operator runs them and as
 * tests/helpers/replicas.ts builds them for the tests: one PostgreSQL database (DATABASE_URL), one
 * DATA_DIR (the same dev signing keys and proxy secret key), the docker driver with one
 * PROXY_SCOPE, and nginx (tests/helpers/nginx.ts, production's template) whose upstream lists
 * every replica. The replicas are the bench's own child processes (relay.ts, with the bench's
 * lifted limits), so each one's CPU can be read from /proc; the database, nginx and the clean-up of
 * the scope's containers come from the tests' helpers.
 *
 * Replicas are added one at a time (`grow`), each beside the ones already running; `front` starts
 * an nginx over the replicas running now (closing the previous one), so a scenario can measure one
 * replica, then two, over the same proxies.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNginx, type Nginx } from '../../tests/helpers/nginx';
import type { Route } from './http-client';
import { childPids } from './procs';
import { ROOT, startRelayProcess, type RelayProcess } from './relay';
import { LABELS } from '../../api-backend/src/proxy/naming';

export interface ReplicaSet {
  replicas: RelayProcess[];
  /** nginx in front of the replicas as they were at the last `front()`. */
  nginx?: Nginx;
  scope: string;
  /** Starts one more replica beside the running ones. */
  grow(): Promise<RelayProcess>;
  /** (Re)starts nginx with every running replica in its upstream. */
  front(): Promise<Nginx>;
  /** The user's tunnel through nginx (HTTPS, trusting nginx's test certificate). */
  route(userId: string): Route;
  /** nginx's master and workers. */
  nginxPids(): number[];
  /** Main process of every running proxy container of this set's scope. */
  proxyPids(): number[];
  close(): Promise<void>;
}

/** Settings of every replica besides the database and the shared folder. */
export interface ReplicaSetOptions {
  scope: string;
  env: Record<string, string>;
}

export async function startReplicaSet(options: ReplicaSetOptions): Promise<ReplicaSet> {
  // Loaded here, not at the top: the module probes the server when it loads, which only this scenario needs.
  const { createTestDatabase } = await import('../../tests/helpers/postgres');
  const db = await createTestDatabase();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-bench-replicas-'));
  const replicas: RelayProcess[] = [];
  const env = { ...options.env, PROXY_DRIVER: 'docker', PROXY_SCOPE: options.scope, DATABASE_URL: db.url };
  const set: ReplicaSet = {
    replicas,
    scope: options.scope,
    async grow() {
      // One after another: the first makes the signing keys and the proxy secret key in DATA_DIR.
      const replica = await startRelayProcess({ driver: 'docker', env, dataDir });
      replicas.push(replica);
      return replica;
    },
    async front() {
      await set.nginx?.close();
      const [first, ...rest] = replicas.map((replica) => `127.0.0.1:${replica.port}`);
      // The per-address limits are for strangers on the internet; every bench client is 127.0.0.1.
      set.nginx = await startNginx({
        upstream: first,
        moreUpstreams: rest,
        rateLimits: { authFailures: 100_000, upgrades: 100_000, health: 100_000 },
        renderScript: path.join(ROOT, 'scripts/nginx-test.sh'),
      });
      return set.nginx;
    },
    route(userId) {
      if (!set.nginx) throw new Error('front() the replicas with nginx first');
      return {
        id: `nginx → ${replicas.length} replica(s)`,
        kind: 'relay',
        host: '127.0.0.1',
        port: set.nginx.httpsPort,
        prefix: `/api/tunnel/${encodeURIComponent(userId)}`,
        headers: { authorization: `Bearer ${replicas[0].token(userId)}` },
        ca: set.nginx.ca,
      };
    },
    nginxPids() {
      if (!set.nginx) return [];
      const master = Number(fs.readFileSync(path.join(set.nginx.dir, 'nginx.pid'), 'utf8').trim());
      return [master, ...childPids(master)];
    },
    proxyPids() {
      const ids = docker(['ps', '-q', '--filter', `label=${LABELS.scope}=${options.scope}`]).split('\n').filter(Boolean);
      if (ids.length === 0) return [];
      return docker(['inspect', '--format', '{{.State.Pid}}', ...ids])
        .split('\n')
        .map(Number)
        .filter((pid) => pid > 0);
    },
    async close() {
      await set.nginx?.close().catch(() => undefined);
      for (const replica of replicas) await replica.close().catch(() => undefined);
      // Docker proxies outlive api-backend on purpose; this set has no next start.
      const { removeScope } = await import('../../tests/docker/support');
      await removeScope(options.scope).catch(() => undefined);
      await db.drop().catch(() => undefined);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return set;
}

function docker(args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', timeout: 30_000 }).trim();
}
