/**
 * A real PostgreSQL server for the audit tests. The URL comes from DATABASE_URL_TEST (.ci/run
 * exports it) or, when that is unset, from the file scripts/ci/provision-postgres.sh leaves in
 * $CTLL_CI_STATE. Every suite gets a database of its own, created fresh and dropped afterwards,
 * so runs never collide and nothing is left behind.
 *
 * Whether a server answers is decided once, synchronously, when a test file loads (jest collects
 * suites synchronously). Without one, suites that need it are skipped with one console line, or
 * fail under CTLL_REQUIRE_POSTGRES=1, which .ci/run sets.
 *
 * `TcpForwarder` stands between api-backend and the server to take the database away for real
 * without stopping the machine's cluster (other suites use it): cut() resets every connection and
 * refuses new ones, restore() listens again on the same port. It can also swallow the server's
 * answer to a COMMIT, which is how a batch's "commit reply lost" looks to api-backend.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { describeIf } from './requirement';

const REPO_ROOT = path.resolve(__dirname, '../..');

/** api-backend settings that make the audit quick enough to watch in a test: journals with activity
 * pulled every 200 ms (all of them every second), writes every 50 ms, security events counted per
 * half second, proxies idle after 1.5 s (swept every second), a silent polling bridge gone after 1 s. */
export const AUDIT_TEST_ENV: Readonly<Record<string, string>> = Object.freeze({
  AUDIT_PULL_INTERVAL_MS: '200',
  AUDIT_IDLE_PULL_INTERVAL_MS: '1000',
  AUDIT_SECURITY_WINDOW_MS: '500',
  AUDIT_FLUSH_INTERVAL_MS: '50',
  PROXY_IDLE_TIMEOUT_MS: '1500',
  PROXY_CLEANUP_CRON: '* * * * * *',
  BRIDGE_GRACE_MS: '1000',
});

export interface PostgresProbe {
  available: boolean;
  url?: string;
  reason: string;
}

export const postgres: PostgresProbe = probePostgres();

function baseUrl(): string | undefined {
  if (process.env.DATABASE_URL_TEST) return process.env.DATABASE_URL_TEST;
  const file = path.join(process.env.CTLL_CI_STATE ?? '/tmp/ctll-ci', 'database_url');
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function probePostgres(): PostgresProbe {
  const url = baseUrl();
  if (!url) return { available: false, reason: 'no PostgreSQL URL (set DATABASE_URL_TEST, or run scripts/ci/provision-postgres.sh)' };
  const script = `
    const { Client } = require('pg');
    const client = new Client({ connectionString: process.env.PROBE_URL, connectionTimeoutMillis: 3000 });
    client.connect().then(() => client.query('SELECT 1')).then(
      () => client.end().then(() => process.exit(0)),
      (error) => { process.stderr.write(error.message); process.exit(1); },
    );`;
  const probe = spawnSync(process.execPath, ['-e', script], {
    cwd: REPO_ROOT,
    env: { ...process.env, PROBE_URL: url },
    timeout: 10_000,
    encoding: 'utf8',
  });
  if (probe.status === 0) return { available: true, url, reason: 'reachable' };
  return { available: false, url, reason: `PostgreSQL at ${redact(url)} not reachable: ${probe.stderr?.trim() || probe.error?.message || 'no answer'}` };
}

/** `describe` when a server answers; otherwise one console line and a skip, or a failure when required. */
export function describeWithPostgres(name: string, suite: () => void): void {
  describeIf({ needs: 'a reachable PostgreSQL server', requireVar: 'CTLL_REQUIRE_POSTGRES' }, postgres.available ? undefined : postgres.reason, name, suite);
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A query on the database directly (not through a forwarder), for assertions. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  drop(): Promise<void>;
}

/** A fresh, empty database on the test server, for one suite. */
export async function createTestDatabase(): Promise<TestDatabase> {
  if (!postgres.url) throw new Error(postgres.reason);
  const name = `ctll_t_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withClient(postgres.url, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = withDatabase(postgres.url, name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => undefined);
  return {
    name,
    url,
    query: async <R extends pg.QueryResultRow>(sql: string, params: readonly unknown[] = []) => (await pool.query<R>(sql, [...params])).rows,
    async drop() {
      await pool.end();
      // FORCE ends the database's sessions, but not one of another role (an autovacuum worker can
      // be on it for a moment): then the server refuses with 42501, and a moment later it works.
      for (let attempt = 1; ; attempt++) {
        try {
          await withClient(postgres.url!, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
          return;
        } catch (error) {
          if ((error as { code?: string }).code !== '42501' || attempt >= 10) throw error;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
    },
  };
}

/** The URL with another database name, or another host:port (for the forwarder). */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export function viaPort(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(port);
  return parsed.toString();
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function redact(url: string): string {
  return url.replace(/:\/\/([^:/@]*):[^@/]*@/, '://$1:***@');
}

/** A TCP hop on 127.0.0.1 to the Postgres server that a test can cut and restore. */
export class TcpForwarder {
  port = 0;
  private server?: net.Server;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private swallowCommits = 0;
  /** Answers to COMMIT swallowed so far (each one a batch whose commit reply was lost). */
  swallowed = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  static to(url: string): TcpForwarder {
    const parsed = new URL(url);
    return new TcpForwarder({ host: parsed.hostname, port: Number(parsed.port || 5432) });
  }

  async start(): Promise<this> {
    await this.listen(0);
    return this;
  }

  /** The database goes away: open connections are reset, new ones refused. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.pairs.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The database comes back on the same port. */
  async restore(): Promise<void> {
    await this.listen(this.port);
  }

  /**
   * The next `count` COMMITs reach the server and commit, but their answer never reaches the
   * client: the connection drops instead, as when a network fails at the worst moment.
   */
  loseCommitReplies(count: number): void {
    this.swallowCommits = count;
  }

  close(): Promise<void> {
    return this.cut();
  }

  private listen(port: number): Promise<void> {
    const server = net.createServer((client) => this.connect(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  private connect(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    const pair = { client, upstream };
    this.pairs.add(pair);
    let commitPending = false;
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('data', (chunk: Buffer) => {
      // A simple-protocol Query message: 'Q', length, "COMMIT\0".
      if (this.swallowCommits > 0 && chunk.includes(Buffer.from('COMMIT\0'))) {
        this.swallowCommits -= 1;
        commitPending = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (commitPending) {
        // The server has committed and answered; the client never hears of it.
        this.swallowed += 1;
        end();
        return;
      }
      client.write(chunk);
    });
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  }
}
