/**
 * Whole frames on api-backend's end of the frame link (frame-relay.ts, proxy-link.ts;
 * protocol/src/whole-frame.ts), against a proxy played by hand that offers them in its hello:
 * what goes to the proxy as one message and what still streams on credit, a whole answer, a
 * caller who leaves, and a malformed whole answer next to a good one on the same link.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  decodeData,
  decodeWhole,
  encodeLinkMessage,
  encodeWhole,
  FRAME_WHOLE,
  INITIAL_WINDOW,
  isWholeFrame,
  MAX_INLINE_BODY_BYTES,
  parseLinkMessage,
  PROTOCOL_VERSION,
  ReceiveCredit,
  type LinkMessage,
  type WholeFrame,
} from '@ctll/protocol';
import { ProxyLinkPool } from '../api-backend/src/relay/proxy-link';
import { relayFrames } from '../api-backend/src/relay/frame-relay';
import { createLogger } from '../api-backend/src/logger';

const logger = createLogger('error');

/** What the proxy played by hand got on its link, in order. */
type Got = { kind: 'control'; message: LinkMessage } | { kind: 'data'; id: string; payload: Buffer } | { kind: 'whole'; frame: WholeFrame };

interface Proxy {
  ws: WebSocket;
  got: Got;
}

/** A proxy that says hello (with `whole: true` unless told otherwise) and hands every message to `onMessage`. */
async function wholeProxy(onMessage: (proxy: Proxy) => void, offersWhole = true) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  wss.on('connection', (ws) => {
    ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION, ...(offersWhole ? { whole: true } : {}) }));
    ws.send(encodeLinkMessage({ type: 'desktop', connected: true }));
    ws.on('message', (data: Buffer, isBinary) => {
      const got = toGot(data, isBinary);
      // api-backend's hello (it always offers whole frames) is the link's, not a stream's.
      if (got.kind === 'control' && got.message.type === 'hello') expect(got.message.whole).toBe(true);
      else onMessage({ ws, got });
    });
  });
  const pool = new ProxyLinkPool({ openTimeoutMs: 5000, logger });
  const endpoint = { host: '127.0.0.1', port: (wss.address() as AddressInfo).port, secret: 'x'.repeat(40) };
  const server = http.createServer((req, res) => {
    pool.get(endpoint).then(
      (link) => relayFrames(req, res, link, req.url ?? '/', { maxBodyBytes: 8 * INITIAL_WINDOW, silenceTimeoutMs: 30_000, onBytes: () => undefined }),
      () => res.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () => new Promise<void>((resolve) => (wss.clients.forEach((c) => c.terminate()), wss.close(() => resolve()))),
    () => pool.close(),
    () => new Promise((resolve) => server.close(resolve)),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function toGot(data: Buffer, isBinary: boolean): Got {
  if (!isBinary) {
    const parsed = parseLinkMessage(data.toString());
    if (!parsed.ok) throw new Error(parsed.error);
    return { kind: 'control', message: parsed.value };
  }
  if (isWholeFrame(data)) {
    const whole = decodeWhole(data);
    if (!whole.ok) throw new Error(whole.error);
    return { kind: 'whole', frame: whole.value };
  }
  const frame = decodeData(data);
  if (!frame.ok) throw new Error(frame.error);
  return { kind: 'data', id: frame.value.id, payload: frame.value.payload };
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A POST of `body`; resolves with the caller's status and body. `request` lets a test abort it. */
function post(url: string, body: Buffer, onRequest?: (req: http.ClientRequest) => void): Promise<{ status: number; body: string } | { broken: string }> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.byteLength } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', (error) => resolve({ broken: error.message }));
    onRequest?.(req);
    req.end(body);
  });
}

/** The proxy's whole answer: 200 with a content-length and `text`. */
function answerWhole(ws: WebSocket, id: string, text: string): void {
  const body = Buffer.from(text);
  ws.send(encodeWhole({ type: 'http_response', id, status: 200, headers: { 'content-type': 'application/json', 'content-length': String(body.byteLength) }, end: true }, body)!, { binary: true });
}

it('a small POST goes to the proxy as one whole frame, and the whole answer reaches the caller', async () => {
  const got: Got[] = [];
  const url = await wholeProxy(({ ws, got: one }) => {
    got.push(one);
    if (one.kind === 'whole' && one.frame.head.type === 'http_request') answerWhole(ws, one.frame.head.id, `{"got":${one.frame.body.byteLength}}`);
  });
  const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'p'.repeat(1000) }));
  expect(await post(`${url}/api/show`, body)).toEqual({ status: 200, body: `{"got":${body.byteLength}}` });
  // One message on the link for the whole request: its head (end: true) with the body inside.
  expect(got).toHaveLength(1);
  expect(got[0]).toMatchObject({ kind: 'whole', frame: { head: { type: 'http_request', method: 'POST', path: '/api/show', end: true } } });
  expect((got[0] as Extract<Got, { kind: 'whole' }>).frame.body.equals(body)).toBe(true);
});

it('a body larger than the inline limit still streams as head, data and end, within the credit the proxy grants', async () => {
  const size = 3 * INITIAL_WINDOW;
  let received = 0;
  let grants = 0;
  let violation: string | undefined;
  const kinds = new Set<string>();
  let headEnd: boolean | undefined;
  const url = await wholeProxy(({ ws, got: one }) => {
    kinds.add(one.kind === 'control' ? one.message.type : one.kind);
    if (one.kind === 'control' && one.message.type === 'http_request') {
      headEnd = one.message.end;
      const id = one.message.id;
      // The proxy's side of the credit: it throws if api-backend sends past what was granted.
      const credit = new ReceiveCredit((bytes) => {
        grants += 1;
        ws.send(encodeLinkMessage({ type: 'window', id, bytes }));
      });
      ws.on('message', (data: Buffer, isBinary) => {
        const frame = isBinary ? decodeData(data) : undefined;
        if (!frame?.ok) return;
        try {
          credit.received(frame.value.payload.byteLength);
        } catch (error) {
          violation = (error as Error).message;
        }
        received += frame.value.payload.byteLength;
        credit.consumed(frame.value.payload.byteLength);
      });
    }
    if (one.kind === 'control' && one.message.type === 'end') answerWhole(ws, one.message.id, `{"got":${received}}`);
  });
  expect(MAX_INLINE_BODY_BYTES).toBeLessThan(size);
  expect(await post(`${url}/api/push`, Buffer.alloc(size, 0x61))).toEqual({ status: 200, body: `{"got":${size}}` });
  expect(kinds.has('whole')).toBe(false);
  expect(headEnd).toBe(false);
  expect(violation).toBeUndefined();
  // Three windows' worth cannot pass without credit coming back.
  expect(grants).toBeGreaterThanOrEqual(2);
});

it('a proxy that did not offer whole frames in its hello gets a small POST the streaming way', async () => {
  const kinds: string[] = [];
  const url = await wholeProxy(({ ws, got: one }) => {
    kinds.push(one.kind === 'control' ? one.message.type : one.kind);
    if (one.kind === 'control' && one.message.type === 'end') {
      ws.send(encodeLinkMessage({ type: 'http_response', id: one.message.id, status: 200, headers: {}, end: true }));
    }
  }, false);
  expect(await post(`${url}/api/show`, Buffer.from('{"model":"m"}'))).toEqual({ status: 200, body: '' });
  expect(kinds).toEqual(['http_request', 'data', 'end']);
});

it('a caller who leaves before the answer to its whole request: the proxy is told to cancel that stream', async () => {
  let sent: (id: string) => void = () => undefined;
  const arrived = new Promise<string>((resolve) => (sent = resolve));
  let cancelled: (id: string) => void = () => undefined;
  const cancel = new Promise<string>((resolve) => (cancelled = resolve));
  const url = await wholeProxy(({ got: one }) => {
    if (one.kind === 'whole') sent(one.frame.head.id);
    if (one.kind === 'control' && one.message.type === 'cancel') cancelled(one.message.id);
  });
  const outcome = post(`${url}/api/generate`, Buffer.from('{"prompt":"never answered"}'), (req) => void arrived.then(() => req.destroy()));
  const id = await arrived;
  expect(await cancel).toBe(id);
  expect(await outcome).toHaveProperty('broken');
});

it('a malformed whole answer fails only its own caller with 502, and the other stream on the same link is answered', async () => {
  const waiting = new Map<string, string>();
  const url = await wholeProxy(({ ws, got: one }) => {
    if (one.kind !== 'whole' || one.frame.head.type !== 'http_request') return;
    waiting.set(one.frame.head.path, one.frame.head.id);
    if (waiting.size < 2) return;
    // A head without its headers: it names its stream, so only that caller fails.
    const head = Buffer.from(JSON.stringify({ type: 'http_response', id: waiting.get('/bad'), status: 200, end: true }));
    ws.send(Buffer.concat([Buffer.from([FRAME_WHOLE, 0, 0, 0, head.byteLength]), head]), { binary: true });
    // One that is not even JSON names no stream: logged, and nothing else changes.
    ws.send(Buffer.from([FRAME_WHOLE, 0, 0, 0, 2, 0x7b, 0x7b]), { binary: true });
    answerWhole(ws, waiting.get('/good')!, '{"ok":true}');
  });
  const [bad, good] = await Promise.all([post(`${url}/bad`, Buffer.from('{}')), post(`${url}/good`, Buffer.from('{}'))]);
  expect(bad).toMatchObject({ status: 502 });
  expect(JSON.parse((bad as { body: string }).body).error.code).toBe('bad_response');
  expect(good).toEqual({ status: 200, body: '{"ok":true}' });
});
