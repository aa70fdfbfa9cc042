/**
 * Real pieces for the bridge's tests: the streaming-proxy bundled from source and run as a child
 * process behind api-backend's frame relay, a small slow-streaming HTTP server standing in for the
 * local LLM server, and a web client. Everything listens on 127.0.0.1 port 0.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { parseProxyAnswer, proxyStatusSchema, type ProxyStatus } from '@ctll/protocol';
import { startFrameEdge } from '../../tests/helpers/frame-edge';

export const PROXY_SECRET = randomBytes(24).toString('hex');
export const SECRET_HEADERS = { 'x-ctll-proxy-secret': PROXY_SECRET };

const ROOT = path.resolve(__dirname, '../..');

/** Bundles a program the way scripts/build.mjs does, into a fresh temp dir; returns the file. */
export async function bundle(entry: string, name: string): Promise<{ file: string; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-bridge-test-'));
  const file = path.join(dir, name);
  await build({
    entryPoints: [path.join(ROOT, entry)],
    bundle: true,
    platform: 'node',
    target: 'node20',
    outfile: file,
    logLevel: 'error',
    external: ['bufferutil', 'utf-8-validate'],
  });
  return { file, dir };
}

export interface RunningProxy {
  port: number;
  url: string;
  /** Where a web client's request goes: api-backend's frame relay in front of this proxy. */
  edge: string;
  child: ChildProcess;
  status(): Promise<ProxyStatus>;
  stop(): Promise<void>;
}

/**
 * Starts the bundled streaming-proxy, and api-backend's frame relay in front of it (the only way a
 * relayed request reaches a proxy); resolves once the proxy reported its port over IPC.
 */
export async function startProxy(file: string, port = 0, env: Record<string, string> = {}): Promise<RunningProxy> {
  const child = fork(file, [], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', PROXY_SECRET, LOG_LEVEL: 'error', ...env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const listening = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`streaming-proxy exited with ${code}`)));
    child.on('message', (message: { type?: string; port?: number }) => {
      if (message.type === 'listening' && message.port) resolve(message.port);
    });
  });
  const url = `http://127.0.0.1:${listening}`;
  const edge = await startFrameEdge({ host: '127.0.0.1', port: listening, secret: PROXY_SECRET }, Number.MAX_SAFE_INTEGER);
  return {
    port: listening,
    url,
    edge: edge.url,
    child,
    status: async () => parseProxyAnswer(proxyStatusSchema, 'status', await (await fetch(`${url}/status`, { headers: SECRET_HEADERS })).text()),
    stop: async () => {
      await new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGKILL');
      });
      await edge.close();
    },
  };
}

export interface Target {
  url: string;
  /** When /stream/<id> wrote its last chunk. */
  finishedAt: Map<string, number>;
  /** Resolves when the client of /hang/<id> went away before the answer ended. */
  closed(id: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * The stand-in for the local LLM server:
 *   /stream/<id>  five chunks, 100 ms apart (a model producing tokens)
 *   /echo         the request body streamed straight back
 *   /hang/<id>    one chunk, then nothing until the client goes away
 *   /json/<n>     a small JSON answer after a short pause
 *   /bytes/<n>    n bytes of zeros, as fast as the client takes them
 *   /die          a first chunk, then the connection drops (a server crashing mid-answer)
 */
export async function startTarget(): Promise<Target> {
  const finishedAt = new Map<string, number>();
  const closedIds = new Map<string, () => void>();
  const closedPromises = new Map<string, Promise<void>>();
  const closedPromise = (id: string) => {
    let promise = closedPromises.get(id);
    if (!promise) {
      promise = new Promise<void>((resolve) => closedIds.set(id, resolve));
      closedPromises.set(id, promise);
    }
    return promise;
  };
  const server = http.createServer((req, res) => {
    const [, route, id = ''] = (req.url ?? '/').split('/');
    if (route === 'stream') {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      let sent = 0;
      const timer = setInterval(() => {
        res.write(`${JSON.stringify({ token: sent })}\n`);
        sent += 1;
        if (sent === 5) {
          clearInterval(timer);
          finishedAt.set(id, Date.now());
          res.end();
        }
      }, 100);
      res.on('close', () => clearInterval(timer));
      return;
    }
    if (route === 'echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
      return;
    }
    if (route === 'hang') {
      void closedPromise(id);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started\n');
      res.on('close', () => {
        if (!res.writableFinished) closedIds.get(id)?.();
      });
      return;
    }
    if (route === 'bytes') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Number(id) });
      res.end(Buffer.alloc(Number(id)));
      return;
    }
    if (route === 'die') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial\n');
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    if (route === 'json') {
      setTimeout(() => res.end(JSON.stringify({ n: Number(id), method: req.method })), 5 + Math.floor(Math.random() * 20));
      return;
    }
    res.writeHead(404).end();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    finishedAt,
    closed: closedPromise,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (it was just free). */
export async function deadPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Sends a request to the proxy's relay route; resolves with the response once its head arrived. */
/** A web client's request through the frame relay at `edgeUrl` (a RunningProxy's `edge`). */
export function relay(
  edgeUrl: string,
  method: string,
  pathname: string,
  body?: Buffer,
): { request: http.ClientRequest; response: Promise<http.IncomingMessage> } {
  const request = http.request(`${edgeUrl}${pathname}`, {
    method,
    headers: { ...(body ? { 'content-type': 'application/octet-stream', 'content-length': body.byteLength } : {}) },
    agent: false,
  });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    request.on('response', resolve);
    request.on('error', reject);
  });
  if (body) request.end(body);
  else request.end();
  return { request, response };
}

export async function readBody(response: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Polls `check` until it is true; for state that settles asynchronously (no fixed sleeps). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface ConnectProxy {
  url: string;
  /** The authority of every CONNECT, in order. */
  connects: string[];
  close(): void;
}

/**
 * A corporate HTTP proxy in miniature: it answers CONNECT and pipes bytes, nothing else. With
 * `upstream`, every CONNECT goes there whatever host it names (a relay "elsewhere" that is really
 * on 127.0.0.1, without a name lookup).
 */
export async function startConnectProxy(upstream?: { host: string; port: number }): Promise<ConnectProxy> {
  const connects: string[] = [];
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.once('data', (head) => {
      const [, authority] = /^CONNECT (\S+) HTTP\/1\.[01]\r\n/.exec(head.toString('latin1')) ?? [];
      if (!authority) {
        client.destroy();
        return;
      }
      connects.push(authority);
      const [host, port] = authority.split(':');
      const upstreamSocket = net.connect(upstream?.port ?? Number(port), upstream?.host ?? host, () => {
        client.write('HTTP/1.1 200 Connection established\r\n\r\n');
        upstreamSocket.pipe(client).pipe(upstreamSocket);
      });
      upstreamSocket.on('error', () => client.destroy());
      client.on('error', () => upstreamSocket.destroy());
      client.on('close', () => upstreamSocket.destroy());
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    connects,
    close: () => {
      for (const socket of sockets) socket.destroy();
      proxy.close();
    },
  };
}
