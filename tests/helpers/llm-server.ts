/**
 * A small Ollama-compatible server that streams slowly: it stands in for the user's model, which
 * these machines cannot run. It speaks the parts of Ollama's API the relay must carry (tags, chat
 * and generate as NDJSON token streams, embed, the OpenAI-compatible SSE endpoint) plus a few
 * routes for the transport itself: deterministic large bodies, echo, hashing, a silent route.
 *
 * It records what a user's model would notice: when each answer finished, and every request whose
 * client went away before the answer was complete (what cancel must cause).
 */
import http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';

export interface LlmServerOptions {
  /** Gap between streamed tokens. */
  tokenDelayMs?: number;
  /** Tokens per streamed answer unless the request says `options.num_predict`. */
  tokens?: number;
  /** Listen on this port (to come back where a bridge expects it after close()); any free one by default. */
  port?: number;
  /**
   * Keep every request in `seen` (the default, for tests that look). The bench turns it off: its
   * server answers hundreds of thousands of requests, and a list that grows by each one would put
   * ever longer garbage collections into the very figures every route is compared with.
   */
  recordSeen?: boolean;
}

export interface LlmServer {
  url: string;
  port: number;
  /** Requests whose connection closed before the answer ended, by path. */
  aborted: string[];
  /** Resolves with the path of the next request aborted by its client. */
  nextAbort(timeoutMs?: number): Promise<string>;
  /** Time each streamed answer wrote its last token, by the request's `x-test-id` header. */
  finishedAt: Map<string, number>;
  /** Requests seen, with the headers they arrived with (all but the bridge's probes of `/api/version`); empty with `recordSeen: false`. */
  seen: Array<{ method: string; path: string; headers: http.IncomingHttpHeaders }>;
  /** Requests whose bodies were kept (`DELETE /api/delete`, any method on `/request`), as they arrived. */
  received: ReceivedRequest[];
  close(): Promise<void>;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** What `GET /api/version` answers, as Ollama does. */
export const OLLAMA_TEST_VERSION = '0.0.0-test';

/** Deterministic bytes for `/bytes`: the same n and seed always give the same body. */
export function patternBytes(offset: number, length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) {
    const x = offset + i;
    out[i] = (x * 31 + seed * 17 + (x >>> 8) * 7 + (x >>> 16)) & 0xff;
  }
  return out;
}

const BLOB_BLOCK = patternBytes(0, 64 * 1024, 7);

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function startLlmServer(options: LlmServerOptions = {}): Promise<LlmServer> {
  const tokenDelayMs = options.tokenDelayMs ?? 20;
  const recordSeen = options.recordSeen ?? true;
  const defaultTokens = options.tokens ?? 10;
  const events = new EventEmitter();
  const aborted: string[] = [];
  const finishedAt = new Map<string, number>();
  const seen: LlmServer['seen'] = [];
  const received: ReceivedRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://llm');
    // The bridge's own health probes (every --probe-interval-ms) are not the traffic tests count.
    if (recordSeen && url.pathname !== '/api/version') seen.push({ method: req.method ?? 'GET', path: url.pathname + url.search, headers: req.headers });
    res.on('close', () => {
      if (!res.writableFinished) {
        aborted.push(url.pathname);
        events.emit('abort', url.pathname);
      }
    });
    const testId = String(req.headers['x-test-id'] ?? '');
    try {
      await route(req, res, url, testId);
    } catch (error) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: (error as Error).message }));
    }
  });

  async function route(req: http.IncomingMessage, res: http.ServerResponse, url: URL, testId: string): Promise<void> {
    const key = `${req.method} ${url.pathname}`;
    if (url.pathname === '/request') {
      // Any method: answers with the request as it arrived, body and framing included.
      const kept = await keep(req, url);
      json(res, 200, kept);
      return;
    }
    switch (key) {
      case 'GET /':
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('Ollama is running');
        return;
      case 'GET /api/version':
        json(res, 200, { version: OLLAMA_TEST_VERSION });
        return;
      case 'GET /api/tags':
        json(res, 200, {
          models: [{ name: 'test-model:latest', model: 'test-model:latest', size: 1234, digest: 'sha256:00', details: {} }],
        });
        return;
      case 'POST /api/chat':
      case 'POST /api/generate': {
        const body = JSON.parse((await readBody(req)).toString('utf8') || '{}');
        const count = body.options?.num_predict ?? defaultTokens;
        const chat = url.pathname === '/api/chat';
        // Benchmarks: `?delayMs=` sets this request's token gap; `?stamp=1` adds `written_ns`, the
        // moment each line was written (process.hrtime, the machine's monotonic clock).
        const delayMs = url.searchParams.has('delayMs') ? Number(url.searchParams.get('delayMs')) : tokenDelayMs;
        const stamp = url.searchParams.get('stamp') === '1';
        const piece = (i: number) => `tok${i} `;
        const frame = (i: number, done: boolean) => ({
          model: body.model ?? 'test-model',
          created_at: new Date().toISOString(),
          ...(chat ? { message: { role: 'assistant', content: done ? '' : piece(i) } } : { response: done ? '' : piece(i) }),
          done,
          ...(done ? { done_reason: 'stop', eval_count: count } : {}),
        });
        if (body.stream === false) {
          const text = Array.from({ length: count }, (_, i) => piece(i)).join('');
          json(res, 200, {
            ...frame(0, true),
            ...(chat ? { message: { role: 'assistant', content: text } } : { response: text }),
          });
          return;
        }
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        for (let i = 0; i < count; i++) {
          if (res.destroyed) return;
          const line = stamp ? { ...frame(i, false), written_ns: process.hrtime.bigint().toString() } : frame(i, false);
          res.write(`${JSON.stringify(line)}\n`);
          await sleep(delayMs);
        }
        finishedAt.set(testId, Date.now());
        res.end(`${JSON.stringify(frame(count, true))}\n`);
        return;
      }
      case 'DELETE /api/delete': {
        // Ollama's delete carries its model name in a JSON body, on a DELETE.
        const body = JSON.parse((await keep(req, url)).body || '{}');
        if (!body.model && !body.name) {
          json(res, 400, { error: 'model is required' });
          return;
        }
        res.writeHead(200, { 'content-length': 0 });
        res.end();
        return;
      }
      case 'GET /early-hints':
        // 103 first, then the real answer a moment later.
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
        await sleep(50);
        json(res, 200, { final: true });
        return;
      case 'GET /switch':
        // Switches protocols, and then says nothing: a relayed caller must not wait for more.
        // `?bare=1` leaves out the upgrade headers, which Node's client reads differently.
        res.socket?.write(
          url.searchParams.get('bare') === '1'
            ? 'HTTP/1.1 101 Switching Protocols\r\n\r\n'
            : 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
        );
        return;
      case 'POST /api/embed': {
        const body = JSON.parse((await readBody(req)).toString('utf8'));
        const inputs: string[] = Array.isArray(body.input) ? body.input : [body.input];
        json(res, 200, { model: body.model, embeddings: inputs.map((text) => [text.length, 0.5, -0.25]) });
        return;
      }
      case 'POST /v1/chat/completions': {
        const body = JSON.parse((await readBody(req)).toString('utf8'));
        const count = body.max_tokens ?? defaultTokens;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        for (let i = 0; i < count; i++) {
          if (res.destroyed) return;
          const chunk = { id: 'chatcmpl-1', object: 'chat.completion.chunk', model: body.model, choices: [{ index: 0, delta: { content: `tok${i} ` }, finish_reason: null }] };
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          await sleep(tokenDelayMs);
        }
        finishedAt.set(testId, Date.now());
        res.end('data: [DONE]\n\n');
        return;
      }
      case 'GET /bytes': {
        const total = Number(url.searchParams.get('n') ?? 1024);
        const seed = Number(url.searchParams.get('seed') ?? 1);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
        writeBlocks(res, total, 64 * 1024, (offset, length) => patternBytes(offset, length, seed));
        return;
      }
      case 'GET /blob': {
        // Benchmarks: n bytes at memory speed (one cached 64 KiB block, repeated), so the sender
        // is never what limits a bulk transfer.
        const total = Number(url.searchParams.get('n') ?? 1024);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
        writeBlocks(res, total, BLOB_BLOCK.byteLength, (_offset, length) =>
          length === BLOB_BLOCK.byteLength ? BLOB_BLOCK : BLOB_BLOCK.subarray(0, length),
        );
        return;
      }
      case 'POST /discard': {
        // Benchmarks: counts an upload's bytes and drops them.
        let bytes = 0;
        req.on('data', (chunk: Buffer) => {
          bytes += chunk.byteLength;
        });
        await new Promise((resolve) => req.on('end', resolve));
        json(res, 200, { bytes });
        return;
      }
      case 'POST /echo/whole': {
        // Benchmarks: like /echo, but read whole and answered with a content-length, the shape
        // of an ordinary JSON API reply.
        const body = await readBody(req);
        res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream', 'content-length': body.byteLength });
        res.end(body);
        return;
      }
      case 'POST /echo':
        res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
        req.pipe(res);
        return;
      case 'POST /sha256': {
        const hash = createHash('sha256');
        let bytes = 0;
        req.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.byteLength;
        });
        await new Promise((resolve) => req.on('end', resolve));
        json(res, 200, { sha256: hash.digest('hex'), bytes });
        return;
      }
      case 'GET /headers':
        json(res, 200, { headers: req.headers });
        return;
      case 'GET /hang':
        // Never answers: the relay's silence timeout must end it.
        return;
      case 'GET /status': {
        const code = Number(url.searchParams.get('code') ?? 200);
        json(res, code, { code });
        return;
      }
      default:
        json(res, 404, { error: `no route ${key}` });
    }
  }

  // Like Ollama, no clock on a whole request: Node's default would answer a six-minute upload 408.
  server.requestTimeout = 0;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  async function keep(req: http.IncomingMessage, url: URL): Promise<ReceivedRequest> {
    const kept = { method: req.method ?? 'GET', path: url.pathname + url.search, headers: req.headers, body: (await readBody(req)).toString('utf8') };
    received.push(kept);
    return kept;
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    aborted,
    finishedAt,
    seen,
    received,
    nextAbort(timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no request was aborted within ${timeoutMs} ms`)), timeoutMs);
        events.once('abort', (path: string) => {
          clearTimeout(timer);
          resolve(path);
        });
      });
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes `total` bytes in blocks of at most `blockBytes`, made by `block`, honouring back-pressure. */
function writeBlocks(res: http.ServerResponse, total: number, blockBytes: number, block: (offset: number, length: number) => Buffer): void {
  let offset = 0;
  const pump = () => {
    while (offset < total) {
      const length = Math.min(blockBytes, total - offset);
      const ok = res.write(block(offset, length));
      offset += length;
      if (!ok) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}
