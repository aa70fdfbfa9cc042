/**
 * api-backend's end of the frame link to a proxy (api-backend/src/relay/proxy-link.ts and
 * frame-relay.ts), against a proxy played by hand (a raw WebSocket server, as raw-desktop.ts plays
 * a desktop): what a web client sees when the link drops mid-answer or before it, when the proxy
 * floods past its credit, when the proxy speaks another protocol version, and when it stops
 * answering pings; and the masking key its frames carry on the wire.
 */
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  decodeData,
  encodeData,
  encodeLinkMessage,
  FLOW_CONTROL_CLOSE_CODE,
  INITIAL_WINDOW,
  LINK_VERSION_CLOSE_CODE,
  MAX_CHUNK_BYTES,
  parseLinkMessage,
  PROTOCOL_VERSION,
  type HttpRequestMessage,
} from '@ctll/protocol';
import { ProxyLinkPool } from '../api-backend/src/relay/proxy-link';
import { relayFrames } from '../api-backend/src/relay/frame-relay';
import { createLogger } from '../api-backend/src/logger';
import type { ProxyEndpoint } from '../api-backend/src/proxy/driver';
import { maskKeys } from './helpers/ws-frames';

const logger = createLogger('error');

interface FakeProxy {
  endpoint: ProxyEndpoint;
  /** The close code and reason of the next link that closes. */
  closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

/** A proxy played by hand: hello (with `version`), a connected desktop, then `onRequest` for each request. */
async function fakeProxy(onRequest: (ws: WebSocket, request: HttpRequestMessage) => void, version = PROTOCOL_VERSION): Promise<FakeProxy> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  let closedWith: (value: { code: number; reason: string }) => void = () => undefined;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => (closedWith = resolve));
  wss.on('connection', (ws) => {
    ws.on('close', (code, reason) => closedWith({ code, reason: reason.toString() }));
    ws.send(encodeLinkMessage({ type: 'hello', version }));
    ws.send(encodeLinkMessage({ type: 'desktop', connected: true }));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const parsed = parseLinkMessage(data.toString());
      if (parsed.ok && parsed.value.type === 'http_request') onRequest(ws, parsed.value);
    });
  });
  return {
    endpoint: { host: '127.0.0.1', port: (wss.address() as AddressInfo).port, secret: 'x'.repeat(40) },
    closed,
    close: () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
}

/** The edge: an HTTP server that relays every request over the pool's link to `proxy`. */
async function edge(pool: ProxyLinkPool, proxy: FakeProxy): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer((req, res) => {
    pool.get(proxy.endpoint).then(
      (link) => relayFrames(req, res, link, req.url ?? '/', { maxBodyBytes: 1024 * 1024, silenceTimeoutMs: 30_000, onBytes: () => undefined }),
      () => res.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** How the caller's request ends: its status and body, or the error that broke it. */
function call(url: string, readAfter?: Promise<unknown>): Promise<{ status: number; body: string } | { broken: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      let body = '';
      // A caller that reads nothing until `readAfter` (it learns of a cut connection only once it reads).
      if (readAfter) {
        res.pause();
        void readAfter.then(() => res.resume());
      }
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (error) => resolve({ broken: error.message }));
      res.on('aborted', () => resolve({ broken: 'aborted' }));
    });
    req.on('error', (error) => resolve({ broken: error.message }));
  });
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(onRequest: (ws: WebSocket, request: HttpRequestMessage) => void) {
  const proxy = await fakeProxy(onRequest);
  const pool = new ProxyLinkPool({ openTimeoutMs: 5000, logger });
  const front = await edge(pool, proxy);
  cleanups.push(() => proxy.close(), () => pool.close(), () => new Promise((resolve) => front.server.close(resolve)));
  return { proxy, pool, url: front.url };
}

it('a caller whose answer is cut by the link dropping mid-stream gets a broken stream, not a hang', async () => {
  const { url } = await setUp((ws, request) => {
    ws.send(encodeLinkMessage({ type: 'http_response', id: request.id, status: 200, headers: { 'content-type': 'text/plain' }, end: false }));
    ws.send(encodeData(request.id, Buffer.from('the first half')), { binary: true });
    setTimeout(() => ws.terminate(), 100);
  });
  const outcome = await call(`${url}/api/generate`);
  expect(outcome).toHaveProperty('broken');
});

it('a caller whose link drops before the answer starts gets 503 proxy_unreachable, and the next request opens a new link', async () => {
  let requests = 0;
  const { url } = await setUp((ws, request) => {
    requests += 1;
    if (requests === 1) return ws.terminate();
    ws.send(encodeLinkMessage({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
    ws.send(encodeData(request.id, Buffer.from('ok')), { binary: true });
    ws.send(encodeLinkMessage({ type: 'end', id: request.id }));
  });
  const first = await call(`${url}/api/tags`);
  expect(first).toMatchObject({ status: 503 });
  expect(JSON.parse((first as { body: string }).body).error.code).toBe('proxy_unreachable');
  expect(await call(`${url}/api/tags`)).toEqual({ status: 200, body: 'ok' });
});

it('a proxy that sends past its credit to a caller who is not reading gets the link closed with 1008, and the caller a broken stream', async () => {
  const { proxy, url } = await setUp((ws, request) => {
    ws.send(encodeLinkMessage({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
    const chunk = Buffer.alloc(MAX_CHUNK_BYTES, 1);
    // On and on, never waiting for credit: once the kernel's socket buffers towards the caller,
    // who reads nothing, are full, no credit goes back and the window runs out.
    let sent = 0;
    const flood = () => {
      for (let i = 0; i < 16 && ws.readyState === ws.OPEN; i++, sent += chunk.byteLength) ws.send(encodeData(request.id, chunk), { binary: true });
      if (ws.readyState === ws.OPEN && sent < 512 * INITIAL_WINDOW) setImmediate(flood);
    };
    flood();
  });
  const outcome = call(`${url}/api/pull`, proxy.closed);
  expect((await proxy.closed).code).toBe(FLOW_CONTROL_CLOSE_CODE);
  expect(await outcome).toHaveProperty('broken');
});

it('refuses a proxy that speaks another protocol version, with a reason that names both', async () => {
  const proxy = await fakeProxy(() => undefined, PROTOCOL_VERSION + 1);
  const pool = new ProxyLinkPool({ openTimeoutMs: 5000, logger });
  cleanups.push(() => proxy.close(), () => pool.close());
  const reason = `protocol version mismatch: api-backend speaks ${PROTOCOL_VERSION}, streaming-proxy speaks ${PROTOCOL_VERSION + 1}; run one release of both`;
  await expect(pool.get(proxy.endpoint)).rejects.toThrow(reason);
  expect(await proxy.closed).toEqual({ code: LINK_VERSION_CLOSE_CODE, reason });
});

it('a link whose proxy stops answering pings is closed: its caller gets 503 proxy_unreachable, and the next request dials a new link', async () => {
  // autoPong off: the first connection plays a frozen proxy (the TCP connection stays open, no pong).
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', autoPong: false });
  await new Promise((resolve) => wss.once('listening', resolve));
  let connections = 0;
  wss.on('connection', (ws) => {
    const alive = ++connections > 1;
    if (alive) ws.on('ping', (data) => ws.pong(data));
    ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION }));
    ws.send(encodeLinkMessage({ type: 'desktop', connected: true }));
    ws.on('message', (data, isBinary) => {
      const parsed = isBinary ? undefined : parseLinkMessage(data.toString());
      if (!alive || !parsed?.ok || parsed.value.type !== 'http_request') return;
      ws.send(encodeLinkMessage({ type: 'http_response', id: parsed.value.id, status: 200, headers: {}, end: false }));
      ws.send(encodeData(parsed.value.id, Buffer.from('ok')), { binary: true });
      ws.send(encodeLinkMessage({ type: 'end', id: parsed.value.id }));
    });
  });
  const endpoint = { host: '127.0.0.1', port: (wss.address() as AddressInfo).port, secret: 'x'.repeat(40) };
  const pool = new ProxyLinkPool({ openTimeoutMs: 5000, logger, pingIntervalMs: 100 });
  const front = await edge(pool, { endpoint, closed: new Promise(() => undefined), close: async () => undefined });
  cleanups.push(
    () => new Promise<void>((resolve) => (wss.clients.forEach((c) => c.terminate()), wss.close(() => resolve()))),
    () => pool.close(),
    () => new Promise((resolve) => front.server.close(resolve)),
  );

  const first = await call(`${front.url}/api/tags`);
  expect(first).toMatchObject({ status: 503 });
  expect(JSON.parse((first as { body: string }).body).error.code).toBe('proxy_unreachable');
  expect(connections).toBe(1);
  expect(await call(`${front.url}/api/tags`)).toEqual({ status: 200, body: 'ok' });
  expect(connections).toBe(2);
});

it('masks its frames with the zero key (nothing sits between api-backend and its proxies), and an upload arrives intact', async () => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  const raw: Buffer[] = [];
  wss.on('connection', (ws, req) => {
    (req.socket as Socket).on('data', (chunk: Buffer) => raw.push(chunk));
    ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION }));
    ws.send(encodeLinkMessage({ type: 'desktop', connected: true }));
    const bodies = new Map<string, Buffer[]>();
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        const frame = decodeData(data);
        if (frame.ok) bodies.get(frame.value.id)?.push(Buffer.from(frame.value.payload));
        return;
      }
      const parsed = parseLinkMessage(data.toString());
      if (!parsed.ok) return;
      const message = parsed.value;
      if (message.type === 'http_request') bodies.set(message.id, []);
      if (message.type !== 'end' || !bodies.has(message.id)) return;
      // Answer with the digest of the bytes that arrived, for the caller to compare with what it sent.
      const body = Buffer.concat(bodies.get(message.id)!);
      ws.send(encodeLinkMessage({ type: 'http_response', id: message.id, status: 200, headers: {}, end: false }));
      ws.send(encodeData(message.id, Buffer.from(sha256(body))), { binary: true });
      ws.send(encodeLinkMessage({ type: 'end', id: message.id }));
    });
  });
  const endpoint = { host: '127.0.0.1', port: (wss.address() as AddressInfo).port, secret: 'x'.repeat(40) };
  const pool = new ProxyLinkPool({ openTimeoutMs: 5000, logger });
  const front = await edge(pool, { endpoint, closed: new Promise(() => undefined), close: async () => undefined });
  cleanups.push(
    () => new Promise<void>((resolve) => (wss.clients.forEach((c) => c.terminate()), wss.close(() => resolve()))),
    () => pool.close(),
    () => new Promise((resolve) => front.server.close(resolve)),
  );

  // Larger than one whole frame and than one data frame: a head, several data frames and an end.
  const upload = randomBytes(3 * MAX_CHUNK_BYTES + 123);
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${front.url}/api/embed`, { method: 'POST', headers: { 'content-length': upload.byteLength } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(upload);
  });
  expect(answer).toEqual({ status: 200, body: sha256(upload) });
  const keys = maskKeys(Buffer.concat(raw));
  expect(keys.length).toBeGreaterThanOrEqual(5);
  for (const key of keys) expect([...key]).toEqual([0, 0, 0, 0]);
});
