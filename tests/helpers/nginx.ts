/**
 * A real nginx (Debian's /usr/sbin/nginx) on 127.0.0.1 high ports, configured the way production
 * is: `scripts/nginx-test.sh render` turns nginx/relay.conf.template into a root-free nginx.conf in a
 * temporary folder, with a self-signed certificate for relay.test, localhost and 127.0.0.1.
 * Everything nginx writes (pid file, logs, temp files) stays in that folder, and `close()` stops
 * the master through its own pid file, then removes the folder.
 *
 * `nginxRequest` is the HTTPS (or plain HTTP) client the tests use against it: node's https with
 * the test certificate as the only trusted CA, recording when each body chunk arrived.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { promisify } from 'node:util';
import { portOpen } from './ports';
import { describeIf, type Requirement } from './requirement';

export const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';
export const RENDER_SCRIPT = path.resolve(__dirname, '../../scripts/nginx-test.sh');
/** The name the test certificate and nginx's server_name carry. */
export const TEST_DOMAIN = 'relay.test';

/** Why nginx cannot run here, or undefined when it can. */
export function nginxMissing(): string | undefined {
  try {
    fs.accessSync(NGINX_BIN, fs.constants.X_OK);
  } catch {
    return `${NGINX_BIN} not found (apt-get install -y nginx, or set NGINX_BIN)`;
  }
  for (const tool of ['openssl', 'envsubst']) {
    const found = (process.env.PATH ?? '').split(path.delimiter).some((dir) => fs.existsSync(path.join(dir, tool)));
    if (!found) return `${tool} not found on PATH (needed by scripts/nginx-test.sh)`;
  }
  return undefined;
}

/** `describe` when nginx can run; otherwise one line and a skip, or a failure under CTLL_REQUIRE_NGINX=1. */
export function describeWithNginx(name: string, suite: () => void): void {
  describeIf(NGINX_REQUIREMENT, nginxMissing(), name, suite);
}

export const NGINX_REQUIREMENT: Requirement = Object.freeze({ needs: 'nginx', requireVar: 'CTLL_REQUIRE_NGINX' });

export interface NginxOptions {
  /** api-backend (or any HTTP server) as host:port. */
  upstream: string;
  /** More api-backend replicas (host:port) beside `upstream`: the upstream block lists them all, and nginx balances across them. */
  moreUpstreams?: string[];
  /** client_max_body_size; default the script's (100 MiB). */
  maxBodyBytes?: number;
  /** Per-address limits per minute (RATE_LIMIT_* placeholders); default the script's (30, 60, 120). */
  rateLimits?: { authFailures?: number; upgrades?: number; health?: number };
  /** scripts/nginx-test.sh by its path, for callers bundled away from this folder (the bench); default RENDER_SCRIPT. */
  renderScript?: string;
}

export interface Nginx {
  dir: string;
  httpPort: number;
  httpsPort: number;
  /** https://127.0.0.1:<httpsPort> */
  url: string;
  /** http://127.0.0.1:<httpPort> */
  httpUrl: string;
  /** Path of the self-signed certificate (PEM): the one CA a client must trust. */
  caFile: string;
  ca: Buffer;
  /** Folder nginx serves /.well-known/acme-challenge/ from on the HTTP port. */
  acmeChallengeDir: string;
  accessLog(): string;
  errorLog(): string;
  close(): Promise<void>;
}

const run = promisify(execFile);

export async function startNginx(options: NginxOptions): Promise<Nginx> {
  // Two tries: the free ports are found by binding port 0 and letting go, so another process may
  // take one before nginx binds it.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (attempt >= 3 || !/Address already in use/.test((error as Error).message)) throw error;
    }
  }
}

async function startOnce(options: NginxOptions): Promise<Nginx> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-nginx-'));
  const [httpPort, httpsPort] = await freePorts(2);
  let child: ChildProcess | undefined;
  try {
    const limits = options.rateLimits ?? {};
    const env = {
      ...process.env,
      NGINX_BIN,
      ...(options.maxBodyBytes ? { MAX_BODY_BYTES: String(options.maxBodyBytes) } : {}),
      ...(limits.authFailures ? { RATE_LIMIT_AUTH_FAILURES: String(limits.authFailures) } : {}),
      ...(limits.upgrades ? { RATE_LIMIT_UPGRADES: String(limits.upgrades) } : {}),
      ...(limits.health ? { RATE_LIMIT_HEALTH: String(limits.health) } : {}),
    };
    const { stdout } = await run('bash', [options.renderScript ?? RENDER_SCRIPT, 'render', dir, options.upstream, String(httpPort), String(httpsPort)], { env });
    const conf = stdout.trim().split('\n').pop()!;
    if (options.moreUpstreams?.length) addUpstreamServers(path.join(dir, 'conf.d/relay.conf'), options.upstream, options.moreUpstreams);
    const errorLogFile = path.join(dir, 'logs/error.log');
    child = spawn(NGINX_BIN, ['-p', dir, '-e', errorLogFile, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const pidFile = path.join(dir, 'nginx.pid');
    const ready = await Promise.race([
      waitUntilListening(httpsPort, pidFile, 10_000).then(() => true),
      exited.then(() => false),
    ]);
    if (!ready) {
      const log = fs.existsSync(errorLogFile) ? fs.readFileSync(errorLogFile, 'utf8') : '';
      throw new Error(`nginx exited during start-up: ${stderr}${log}`.trim());
    }
    await waitUntilListening(httpPort, pidFile, 10_000);
    const caFile = path.join(dir, 'certs/fullchain.pem');
    const master = child;
    return {
      dir,
      httpPort,
      httpsPort,
      url: `https://127.0.0.1:${httpsPort}`,
      httpUrl: `http://127.0.0.1:${httpPort}`,
      caFile,
      ca: fs.readFileSync(caFile),
      acmeChallengeDir: path.join(dir, 'acme/.well-known/acme-challenge'),
      accessLog: () => readIfExists(path.join(dir, 'logs/access.log')),
      errorLog: () => readIfExists(errorLogFile),
      close: () => stopByPidFile(pidFile, master, exited).finally(() => fs.rmSync(dir, { recursive: true, force: true })),
    };
  } catch (error) {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Fast shutdown (SIGTERM) of the master named in nginx's own pid file: a graceful SIGQUIT would wait
 * for every open WebSocket tunnel to end. SIGKILL after 5 s if the master is still there.
 */
async function stopByPidFile(pidFile: string, master: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (master.exitCode !== null || master.signalCode !== null) return;
  const pid = Number(readIfExists(pidFile).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`nginx pid file ${pidFile} is missing or empty`);
  process.kill(pid, 'SIGTERM');
  const timer = setTimeout(() => process.kill(pid, 'SIGKILL'), 5000);
  await exited.finally(() => clearTimeout(timer));
}

/** Adds `server` lines after the rendered one in the api-backend upstream block: what an operator running replicas writes. */
function addUpstreamServers(site: string, first: string, more: string[]): void {
  const text = fs.readFileSync(site, 'utf8');
  const line = `    server ${first};\n`;
  if (!text.includes(line)) throw new Error(`no "server ${first};" line in ${site} to add replicas beside`);
  fs.writeFileSync(site, text.replace(line, line + more.map((upstream) => `    server ${upstream};\n`).join('')));
}

function readIfExists(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<net.Server>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

async function waitUntilListening(port: number, pidFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (fs.existsSync(pidFile) && (await portOpen(port))) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface Chunk {
  at: number;
  bytes: Buffer;
}

export interface NginxResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  chunks: Chunk[];
  body: Buffer;
  text(): string;
  json<T = unknown>(): T;
  /** The TLS version of the connection, for HTTPS. */
  tlsVersion?: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A whole body, or a function that writes it (for uploads that trickle) and ends the request. */
  body?: Buffer | string | ((req: http.ClientRequest) => Promise<void>);
  /** Trusted CA for HTTPS; the test certificate, normally. */
  ca?: Buffer;
  /** Called when the response head has arrived, before its body is read. */
  onResponse?: (res: http.IncomingMessage) => void;
  timeoutMs?: number;
  /** Client address to connect from (any 127.x.y.z works on Linux): a distinct caller for per-address limits. */
  localAddress?: string;
}

/**
 * One request on a fresh connection (no keep-alive, HTTP/1.1), its body read chunk by chunk with
 * the arrival time of each chunk.
 */
export function nginxRequest(url: string, options: RequestOptions = {}): Promise<NginxResponse> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(target, {
      method: options.method ?? 'GET',
      headers: options.headers,
      agent: false,
      localAddress: options.localAddress,
      ...(secure ? { ca: options.ca } : {}),
      timeout: options.timeoutMs ?? 20_000,
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${options.timeoutMs ?? 20_000} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      options.onResponse?.(res);
      const tlsVersion = secure ? ((res.socket as tls.TLSSocket).getProtocol() ?? undefined) : undefined;
      const chunks: Chunk[] = [];
      res.on('data', (bytes: Buffer) => chunks.push({ at: Date.now(), bytes }));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks.map((c) => c.bytes));
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          chunks,
          body,
          text: () => body.toString('utf8'),
          json: <T>() => JSON.parse(body.toString('utf8')) as T,
          tlsVersion,
        });
      });
    });
    const { body } = options;
    if (typeof body === 'function') {
      body(req).catch((error: Error) => req.destroy(error));
    } else {
      req.end(body);
    }
  });
}

/** Splits a streamed body into lines, each with the arrival time of the chunk that completed it. */
export function linesWithArrival(chunks: Chunk[]): Array<{ at: number; line: string }> {
  const lines: Array<{ at: number; line: string }> = [];
  let pending = '';
  for (const chunk of chunks) {
    pending += chunk.bytes.toString('utf8');
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() !== '') lines.push({ at: chunk.at, line });
    }
  }
  if (pending.trim() !== '') lines.push({ at: chunks[chunks.length - 1].at, line: pending });
  return lines;
}
