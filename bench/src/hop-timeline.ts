/**
 * Where a lone request's added latency goes, step by step: one request at a time through
 * ws/process on one socket, while tcpdump records the loopback interface. By default the bench's
 * small request (1 KiB in, 1 KiB out, `POST /echo/whole`); with `--chat`, a streaming
 * `POST /api/chat` of one token, timed to that token: time to first token, step by step. Either
 * way the request crosses the processes as eight data-carrying segments in a fixed order (web
 * client → api-backend → proxy → bridge → test server and back; ten where api-backend pipes the
 * desktop's tunnel on to the proxy) before the client sees its answer (or first token); the time
 * from one segment to the next is the work of the process between them, plus its wake-up. Prints
 * each step's p50 and p90 over every whole cycle captured, as a Markdown table.
 *
 *   npm run build && node bench/run.mjs --hops [--chat] [--requests 1000] [--warmup 8000]
 *
 * Needs tcpdump (Debian's `tcpdump`) and the right to capture (root). The capture costs some time
 * itself, so the sum of the steps is above the same requests' latency without it; compare steps,
 * and runs made the same way.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { percentile } from './measure';
import { stopAll } from './procs';
import { relayRoute, startBridgeProcess, startLlm, startRelayProcess } from './relay';
import { SMALL_BODY } from './scenarios/small';
import type { Route } from './http-client';

/**
 * The steps between the segments of one request, in order. Since the process driver hands the
 * desktop's socket to the proxy (api-backend/src/proxy/tunnel-handoffs.ts) a request crosses eight
 * segments; through a relayed upgrade (a build before that, or a container's proxy) api-backend
 * pipes the desktop's bytes on to the proxy, two more segments.
 */
const HANDED_STEPS = [
  'api-backend: HTTP request in, request frame out to the proxy',
  'proxy: frame link in, desktop link out',
  'bridge: frame in, HTTP request out to the local server',
  'the local server (the model)',
  'bridge: HTTP answer in, frame out',
  'proxy: desktop link in, frame link out',
  'api-backend: answer frame in, HTTP answer out',
];
const PIPED_STEPS = [
  ...HANDED_STEPS.slice(0, 2),
  'api-backend: desktop pipe (raw bytes)',
  ...HANDED_STEPS.slice(2, 5),
  'api-backend: desktop pipe (raw bytes)',
  ...HANDED_STEPS.slice(5),
];

/** What is sent, and how the client knows its answer is whole. */
interface Exchange {
  request: (route: Route) => Buffer;
  /** Length of the whole answer at the start of `buffer`, or undefined while it is incomplete. */
  answerLength: (buffer: Buffer, headEnd: number, head: string) => number | undefined;
}

const SMALL: Exchange = {
  request: (route) => rawRequest(route, '/echo/whole', SMALL_BODY),
  answerLength: (buffer, headEnd, head) => {
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? NaN);
    if (!Number.isFinite(length)) throw new Error(`answer without content-length: ${head.slice(0, 200)}`);
    return buffer.length >= headEnd + 4 + length ? headEnd + 4 + length : undefined;
  },
};

/** One token (num_predict 1), then the closing line 5 ms later: the head and the token travel together. */
const CHAT: Exchange = {
  request: (route) =>
    rawRequest(route, '/api/chat?delayMs=5', Buffer.from(JSON.stringify({ model: 'test-model', stream: true, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 1 } }))),
  answerLength: (buffer, headEnd) => {
    const last = buffer.indexOf('\r\n0\r\n\r\n', headEnd);
    return last === -1 ? undefined : last + 7;
  },
};

function rawRequest(route: Route, path: string, body: Buffer): Buffer {
  const head = [`POST ${route.prefix}${path} HTTP/1.1`, `host: ${route.host}:${route.port}`, 'content-type: application/json', `content-length: ${body.byteLength}`];
  for (const [name, value] of Object.entries(route.headers)) head.push(`${name}: ${value}`);
  return Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body]);
}

/** One HTTP/1.1 request at a time on one socket whose port we know (the capture is read by ports). */
class RawClient {
  private pending: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private buffer = Buffer.alloc(0);
  private readonly request: Buffer;

  private constructor(private readonly socket: net.Socket, route: Route, private readonly exchange: Exchange) {
    this.request = exchange.request(route);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.pending?.reject(error));
  }

  static async open(route: Route, exchange: Exchange): Promise<RawClient> {
    const socket = net.connect(route.port, route.host);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RawClient(socket, route, exchange);
  }

  get port(): number {
    return this.socket.localPort ?? 0;
  }

  send(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(this.request);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end === -1) return;
    const head = this.buffer.subarray(0, end).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]);
    let length: number | undefined;
    try {
      length = this.exchange.answerLength(this.buffer, end, head);
    } catch (error) {
      return this.pending?.reject(error as Error);
    }
    if (length === undefined) return;
    this.buffer = this.buffer.subarray(length);
    if (status !== 200) this.pending?.reject(new Error(`status ${status}`));
    else this.pending?.resolve();
  }
}

/** `tcpdump -r` lines as [seconds, "from>to"] (ports only: everything is on 127.0.0.1). */
function segments(file: string): Array<[number, string]> {
  const text = execFileSync('tcpdump', ['-nn', '-tt', '-r', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 1024 * 1024 });
  const rows: Array<[number, string]> = [];
  for (const line of text.split('\n')) {
    const match = /^(\d+\.\d+) IP 127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+):/.exec(line);
    if (match) rows.push([Number(match[1]), `${match[2]}>${match[3]}`]);
  }
  return rows;
}

/**
 * Every run of `steps.length + 1` segments that starts with the client's request, ends with its
 * answer (or, for a stream, its first token) and meets the test server where the steps say.
 */
function cycles(rows: Array<[number, string]>, client: number, relay: number, llm: number, steps: string[]): number[][] {
  const first = `${client}>${relay}`;
  const last = `${relay}>${client}`;
  const n = steps.length;
  const model = steps.indexOf('the local server (the model)');
  const found: number[][] = [];
  for (let i = 0; i + n < rows.length; i++) {
    if (rows[i][1] !== first || rows[i + n][1] !== last) continue;
    if (!rows[i + model][1].endsWith(`>${llm}`) || !rows[i + model + 1][1].startsWith(`${llm}>`)) continue;
    const run = rows.slice(i, i + n + 1);
    if (run.slice(1, n).some(([, flow]) => flow.includes(String(client)))) continue;
    found.push(run.map(([at]) => at));
  }
  return found;
}

async function main(): Promise<void> {
  const { values: option } = parseArgs({ options: { chat: { type: 'boolean', default: false }, requests: { type: 'string', default: '1000' }, warmup: { type: 'string', default: '8000' } } });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-hops-')), 'capture.pcap');
  const llm = await startLlm();
  const relay = await startRelayProcess({ driver: 'process' });
  const bridge = await startBridgeProcess(relay, 'hops-user', llm.url, 'ws');
  const client = await RawClient.open(relayRoute(relay, 'hops-user', 'relay ws/process'), option.chat ? CHAT : SMALL);
  try {
    for (let i = 0; i < Number(option.warmup); i++) await client.send();
    // Data-carrying segments only: a bare ACK is 66 bytes on loopback; the small request's are over
    // 1 KiB, a chat's 200 and more (the frames that end a stream, under 100, are left out too).
    const dump = spawn('tcpdump', ['-i', 'lo', '-nn', '-U', '-w', file, `tcp and greater ${option.chat ? 180 : 500}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      dump.once('error', (error) => reject(new Error(`tcpdump: ${error.message} (apt-get install tcpdump; it needs root)`)));
      dump.stderr.on('data', (chunk: Buffer) => chunk.toString().includes('listening on') && resolve());
    });
    const began = process.hrtime.bigint();
    for (let i = 0; i < Number(option.requests); i++) await client.send();
    const wallMs = Number(process.hrtime.bigint() - began) / 1e6;
    dump.kill('SIGINT');
    await new Promise((resolve) => dump.once('exit', resolve));
    const rows = segments(file);
    let steps = HANDED_STEPS;
    let found = cycles(rows, client.port, relay.port, llm.port, steps);
    if (found.length === 0) found = cycles(rows, client.port, relay.port, llm.port, (steps = PIPED_STEPS));
    if (found.length === 0) throw new Error('no whole request cycle in the capture');
    console.log(`${found.length} whole cycles of ${option.requests} requests (${(wallMs / Number(option.requests)).toFixed(3)} ms each on average, capture running); load average ${os.loadavg()[0].toFixed(2)} on ${os.cpus().length} cores`);
    const row = (name: string, ms: number[]) => console.log(`| ${name} | ${percentile(ms, 50).toFixed(3)} | ${percentile(ms, 90).toFixed(3)} |`);
    console.log('| step | p50 ms | p90 ms |\n|---|---|---|');
    steps.forEach((step, k) => row(step, found.map((at) => (at[k + 1] - at[k]) * 1000)));
    row(option.chat ? 'request in to first token out, all steps' : 'request in to answer out, all steps', found.map((at) => (at[steps.length] - at[0]) * 1000));
  } finally {
    client.close();
    await bridge.close();
    await relay.close();
    await llm.proc.stop();
    await stopAll();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
