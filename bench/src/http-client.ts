/**
 * The web client of every scenario: plain node:http over keep-alive sockets on 127.0.0.1, the
 * same code whichever way the request goes (direct to the test server, through our relay, or
 * through a peer tunnel). A Route says only where to send and which headers to add.
 *
 * Two load shapes: `sequential` (one request at a time on one warm socket: latency) and
 * `closedLoop` (N connections, each sending its next request as soon as the last one ended:
 * throughput). Both stop by themselves after a fixed count or time.
 */
import http from 'node:http';
import https from 'node:https';
import { nowMs } from './measure';

export type RouteKind = 'direct' | 'relay' | 'peer';

export interface Route {
  /** Stable key in results.json, e.g. `direct`, `relay ws/process`, `ssh -R`. */
  id: string;
  kind: RouteKind;
  host: string;
  port: number;
  /** Prefix before the LLM server's own path (`/api/tunnel/<user>` for the relay). */
  prefix: string;
  headers: Record<string, string>;
  /** Our relay's processes, by role, for memory figures. */
  pids?: () => Record<string, number>;
  /** HTTPS with this certificate as the one trusted CA (the relay behind nginx); plain HTTP without. */
  ca?: Buffer;
}

export interface RequestSpec {
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** A body sent whole. */
  body?: Buffer;
  /** A large body streamed from one block repeated, with backpressure. */
  stream?: { block: Buffer; bytes: number };
  /** Called with each chunk of the answer and the moment it arrived. */
  onChunk?: (chunk: Buffer, atMs: number) => void;
  timeoutMs?: number;
}

export interface Outcome {
  status: number;
  bytes: number;
  startMs: number;
  headersMs: number;
  endMs: number;
  error?: string;
}

export function agentFor(connections: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections, scheduling: 'lifo' });
}

/** A keep-alive agent with no cap on sockets, for open-loop load: HTTPS when the route asks for it. */
export function openLoopAgent(route: Route): http.Agent {
  const options = { keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 };
  return route.ca ? new https.Agent({ ...options, ca: route.ca }) : new http.Agent(options);
}

export function send(route: Route, agent: http.Agent, spec: RequestSpec): Promise<Outcome> {
  return new Promise((resolve) => {
    const startMs = nowMs();
    let headersMs = Number.NaN;
    let bytes = 0;
    let settled = false;
    const headers: Record<string, string> = { ...route.headers, ...spec.headers };
    if (spec.body) headers['content-length'] = String(spec.body.byteLength);
    if (spec.stream) headers['content-length'] = String(spec.stream.bytes);
    const done = (status: number, error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, bytes, startMs, headersMs, endMs: nowMs(), error });
    };
    const req = (route.ca ? https : http).request({
      host: route.host,
      port: route.port,
      method: spec.method,
      path: route.prefix + spec.path,
      headers,
      agent,
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no complete answer within ${spec.timeoutMs ?? 60_000} ms`));
    }, spec.timeoutMs ?? 60_000);
    req.on('socket', (socket) => socket.setNoDelay(true));
    req.on('error', (error) => done(0, error.message));
    req.on('response', (res) => {
      headersMs = nowMs();
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.byteLength;
        spec.onChunk?.(chunk, nowMs());
      });
      res.on('end', () => done(res.statusCode ?? 0));
      res.on('error', (error) => done(res.statusCode ?? 0, error.message));
      res.on('close', () => {
        if (!res.complete) done(res.statusCode ?? 0, 'answer cut off');
      });
    });
    if (spec.stream) {
      const { block, bytes: total } = spec.stream;
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const length = Math.min(block.byteLength, total - sent);
          sent += length;
          if (!req.write(length === block.byteLength ? block : block.subarray(0, length))) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    } else {
      req.end(spec.body);
    }
  });
}

export function ok(outcome: Outcome, expectBytes?: number): boolean {
  return outcome.status === 200 && !outcome.error && (expectBytes === undefined || outcome.bytes === expectBytes);
}

/** `count` requests one after another on one keep-alive socket; returns each one's latency (ms). */
export async function sequential(
  route: Route,
  agent: http.Agent,
  spec: () => RequestSpec,
  count: number,
  expectBytes?: number,
): Promise<{ samples: number[]; errors: number; firstError?: string }> {
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  for (let i = 0; i < count; i++) {
    const outcome = await send(route, agent, spec());
    if (ok(outcome, expectBytes)) {
      samples.push(outcome.endMs - outcome.startMs);
    } else {
      errors += 1;
      firstError ??= outcome.error ?? `status ${outcome.status}, ${outcome.bytes} bytes`;
    }
  }
  return { samples, errors, firstError };
}

export interface LoadResult {
  completed: number;
  errors: number;
  seconds: number;
  rps: number;
  latencies: number[];
  firstError?: string;
}

/**
 * `connections` workers, each sending its next request the moment the last one ended, for
 * `durationMs` after a `warmupMs` whose requests are not counted.
 */
export async function closedLoop(route: Route, spec: () => RequestSpec, options: { connections: number; durationMs: number; warmupMs: number; expectBytes?: number }): Promise<LoadResult> {
  const agent = agentFor(options.connections);
  const began = nowMs();
  const countFrom = began + options.warmupMs;
  const stopAt = countFrom + options.durationMs;
  let completed = 0;
  let errors = 0;
  let firstError: string | undefined;
  const latencies: number[] = [];
  const worker = async () => {
    while (nowMs() < stopAt) {
      const outcome = await send(route, agent, spec());
      if (outcome.startMs < countFrom || outcome.endMs > stopAt) continue;
      if (ok(outcome, options.expectBytes)) {
        completed += 1;
        latencies.push(outcome.endMs - outcome.startMs);
      } else {
        errors += 1;
        firstError ??= outcome.error ?? `status ${outcome.status}`;
        // A failing route must not spin: back off a little per error.
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  agent.destroy();
  const seconds = options.durationMs / 1000;
  return { completed, errors, seconds, rps: completed / seconds, latencies, firstError };
}
