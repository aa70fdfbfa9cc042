/**
 * Whole frames on the proxy's end of the frame link (protocol/src/whole-frame.ts): a short
 * request arriving as one message, a short answer leaving as one, and what stays on the streaming
 * path. The proxy server is the real one; api-backend and the desktop are raw WebSockets.
 */
import {
  decodeData,
  encodeData,
  encodeLinkMessage,
  encodeWhole,
  FRAME_WHOLE,
  MAX_INLINE_BODY_BYTES,
  PROTOCOL_VERSION,
  TunnelErrorCode,
  type HttpRequestMessage,
} from '@ctll/protocol';
import { connectDesktop, startProxy, type RawDesktop, type TestProxy } from './helpers/proxy';
import { nextOf, openRawLink, type LinkEvent, type RawLink } from './helpers/raw-link';

let proxy: TestProxy;
beforeEach(async () => {
  proxy = await startProxy();
});
afterEach(() => proxy.close());

async function nextDesktop(desktop: RawDesktop, type: string) {
  for (;;) {
    const message = await desktop.next();
    if (message.type === type) return message;
  }
}

/** The desktop's request head, then every body byte it got until the request's `end`. */
async function desktopRequest(desktop: RawDesktop): Promise<{ request: HttpRequestMessage; body: Buffer }> {
  const chunks: Buffer[] = [];
  const onFrame = (data: Buffer, isBinary: boolean) => {
    const frame = isBinary ? decodeData(data) : undefined;
    if (frame?.ok) chunks.push(Buffer.from(frame.value.payload));
  };
  desktop.ws.on('message', onFrame);
  const request = await nextDesktop(desktop, 'http_request');
  if (request.type !== 'http_request') throw new Error('unreachable');
  if (!request.end) await nextDesktop(desktop, 'end');
  desktop.ws.off('message', onFrame);
  return { request, body: Buffer.concat(chunks) };
}

/** The desktop answers `body` as head, data and end, with or without a content-length. */
function desktopAnswers(desktop: RawDesktop, id: string, body: string, withLength: boolean): void {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(withLength ? { 'content-length': String(Buffer.byteLength(body)) } : {}) };
  desktop.ws.send(JSON.stringify({ type: 'http_response', id, status: 200, headers, end: false }));
  desktop.ws.send(encodeData(id, Buffer.from(body)), { binary: true });
  desktop.ws.send(JSON.stringify({ type: 'end', id }));
}

/** A link that has said hello (taking whole frames or not) with a desktop behind the proxy. */
async function linkWithDesktop(whole = true): Promise<{ link: RawLink; desktop: RawDesktop }> {
  const desktop = await connectDesktop(proxy);
  const link = await openRawLink(proxy);
  link.ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION, ...(whole ? { whole: true } : {}) }));
  await nextOf(link, 'desktop');
  return { link, desktop };
}

/** The next event that is not the proxy's hello or desktop state. */
async function nextStreamEvent(link: RawLink): Promise<LinkEvent> {
  for (;;) {
    const event = await link.nextEvent();
    if (event.kind !== 'control' || (event.message.type !== 'hello' && event.message.type !== 'desktop')) return event;
  }
}

const post = (id: string, path = '/api/show'): HttpRequestMessage => ({ type: 'http_request', id, method: 'POST', path, headers: { 'content-type': 'application/json' }, end: true });

it('a small request that arrives whole reaches the desktop with its body, and its short answer goes back as one whole frame', async () => {
  const { link, desktop } = await linkWithDesktop();
  const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'x'.repeat(900) }));
  link.ws.send(encodeWhole({ ...post('w1'), headers: { 'content-type': 'application/json', 'content-length': String(body.byteLength) } }, body)!, { binary: true });

  const got = await desktopRequest(desktop);
  expect(got.request).toMatchObject({ method: 'POST', path: '/api/show', end: false });
  expect(got.body.equals(body)).toBe(true);

  desktopAnswers(desktop, got.request.id, '{"answer":"short"}', true);
  // The answer's first message on the link is the whole frame: no head went ahead of it.
  const event = await nextStreamEvent(link);
  expect(event.kind).toBe('whole');
  if (event.kind !== 'whole') throw new Error('unreachable');
  expect(event.frame.head).toMatchObject({ type: 'http_response', id: 'w1', status: 200, end: true });
  expect(event.frame.body.toString()).toBe('{"answer":"short"}');
  expect(proxy.stats.requests).toBe(1);
  link.ws.close();
});

it('an answer without a content-length (a streamed generation) still goes head first, then data, then end', async () => {
  const { link, desktop } = await linkWithDesktop();
  link.ws.send(encodeWhole(post('g1', '/api/generate'), Buffer.from('{"stream":true}'))!, { binary: true });
  const { request } = await desktopRequest(desktop);
  desktopAnswers(desktop, request.id, '{"response":"tok"}', false);

  expect(await answerKinds(link)).toEqual(['http_response', 'data', 'end']);
  link.ws.close();
});

it('an api-backend that did not offer whole frames in its hello gets a short answer the streaming way', async () => {
  const { link, desktop } = await linkWithDesktop(false);
  link.ws.send(encodeLinkMessage({ type: 'http_request', id: 'old', method: 'GET', path: '/api/tags', headers: {}, end: true }));
  const { request } = await desktopRequest(desktop);
  desktopAnswers(desktop, request.id, '{"models":[]}', true);
  const first = await nextStreamEvent(link);
  expect(first).toMatchObject({ kind: 'control', message: { type: 'http_response', id: 'old', status: 200, end: false } });
  link.ws.close();
});

it('a cancel of a request that arrived whole reaches the desktop, which stops that stream', async () => {
  const { link, desktop } = await linkWithDesktop();
  link.ws.send(encodeWhole(post('c1', '/api/generate'), Buffer.from('{"prompt":"long"}'))!, { binary: true });
  const { request } = await desktopRequest(desktop);
  link.ws.send(encodeLinkMessage({ type: 'cancel', id: 'c1', reason: 'client disconnected' }));
  expect(await nextDesktop(desktop, 'cancel')).toMatchObject({ id: request.id });
  link.ws.close();
});

it('a malformed whole frame gets bad_message for the stream it names, and another stream on the same link is answered', async () => {
  const { link, desktop } = await linkWithDesktop();
  // A body past the inline limit: its sender would be outside flow control, so it is refused.
  const head = Buffer.from(JSON.stringify(post('big')));
  const oversized = Buffer.alloc(5 + head.byteLength + MAX_INLINE_BODY_BYTES + 1, 0x78);
  oversized[0] = FRAME_WHOLE;
  oversized.writeUInt32BE(head.byteLength, 1);
  head.copy(oversized, 5);
  link.ws.send(oversized, { binary: true });
  // And one whose head is not even JSON: refused for no stream.
  link.ws.send(Buffer.from([FRAME_WHOLE, 0, 0, 0, 3, 0x7b, 0x7b, 0x7b]), { binary: true });
  link.ws.send(encodeWhole(post('fine'), Buffer.from('{}'))!, { binary: true });

  expect(await nextOf(link, 'error')).toMatchObject({ id: 'big', code: TunnelErrorCode.BadMessage, message: expect.stringContaining(`${MAX_INLINE_BODY_BYTES}`) });
  const second = await nextOf(link, 'error');
  expect(second).toMatchObject({ code: TunnelErrorCode.BadMessage, message: expect.stringContaining('not valid JSON') });
  expect(second.id).toBeUndefined();

  const { request, body } = await desktopRequest(desktop);
  expect(request.path).toBe('/api/show');
  expect(body.toString()).toBe('{}');
  desktopAnswers(desktop, request.id, '{"ok":true}', true);
  const event = await nextStreamEvent(link);
  expect(event).toMatchObject({ kind: 'whole', frame: { head: { id: 'fine', status: 200 } } });
  expect(proxy.stats.requests).toBe(1);
  link.ws.close();
});

/** The kinds of the link's messages for one answer, up to its end. */
async function answerKinds(link: RawLink): Promise<string[]> {
  const kinds: string[] = [];
  for (;;) {
    const event = await nextStreamEvent(link);
    kinds.push(event.kind === 'control' ? event.message.type : event.kind);
    if (event.kind === 'whole' || (event.kind === 'control' && (event.message.type === 'end' || event.message.type === 'error'))) return kinds;
  }
}

it('a short answer that sends more than its content-length declared is not held: it streams', async () => {
  const { link, desktop } = await linkWithDesktop();
  link.ws.send(encodeWhole(post('o1'), Buffer.from('{}'))!, { binary: true });
  const { request } = await desktopRequest(desktop);
  desktop.ws.send(JSON.stringify({ type: 'http_response', id: request.id, status: 200, headers: { 'content-length': '4' }, end: false }));
  desktop.ws.send(encodeData(request.id, Buffer.from('more than four')), { binary: true });
  desktop.ws.send(JSON.stringify({ type: 'end', id: request.id }));
  expect(await answerKinds(link)).toEqual(['http_response', 'data', 'end']);
  link.ws.close();
});

it('a short answer that trickles in for longer than a short answer takes goes on the streaming way, so api-backend hears from it', async () => {
  const { link, desktop } = await linkWithDesktop();
  link.ws.send(encodeWhole(post('t1'), Buffer.from('{}'))!, { binary: true });
  const { request } = await desktopRequest(desktop);
  desktop.ws.send(JSON.stringify({ type: 'http_response', id: request.id, status: 200, headers: { 'content-length': '10' }, end: false }));
  desktop.ws.send(encodeData(request.id, Buffer.from('first')), { binary: true });
  // Past the proxy's hold limit (one second) before the rest comes.
  await new Promise((resolve) => setTimeout(resolve, 1300));
  desktop.ws.send(encodeData(request.id, Buffer.from('-rest')), { binary: true });
  desktop.ws.send(JSON.stringify({ type: 'end', id: request.id }));
  expect(await answerKinds(link)).toEqual(['http_response', 'data', 'data', 'end']);
  link.ws.close();
});
