/**
 * The proxy's end of api-backend's frame link (upstream/upstream-link.ts), played by hand: a raw
 * WebSocket stands in for api-backend, another for the desktop, the proxy server is the real one.
 * What happens to the link and its streams on a frame for no stream, on a flood past the credit
 * the proxy granted, and on a hello of another protocol version.
 */
import WebSocket from 'ws';
import {
  encodeData,
  encodeLinkMessage,
  FLOW_CONTROL_CLOSE_CODE,
  INITIAL_WINDOW,
  LINK_VERSION_CLOSE_CODE,
  MAX_CHUNK_BYTES,
  PROTOCOL_VERSION,
  PROXY_LINK_PATH,
  TunnelErrorCode,
} from '@ctll/protocol';
import { connectDesktop, startProxy, type RawDesktop, type TestProxy } from './helpers/proxy';
import { nextOf, openRawLink } from './helpers/raw-link';

async function nextDesktop(desktop: RawDesktop, type: string) {
  for (;;) {
    const message = await desktop.next();
    if (message.type === type) return message;
  }
}

let proxy: TestProxy;
beforeEach(async () => {
  proxy = await startProxy();
});
afterEach(() => proxy.close());

it('says hello with its protocol version (and that it takes whole frames), then whether a desktop is connected, and again when one connects', async () => {
  const link = await openRawLink(proxy);
  expect(await link.next()).toEqual({ type: 'hello', version: PROTOCOL_VERSION, whole: true, bridgeCalls: true });
  expect(await link.next()).toEqual({ type: 'desktop', connected: false });
  link.ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION }));
  const desktop = await connectDesktop(proxy);
  expect(await link.next()).toEqual({ type: 'desktop', connected: true });
  desktop.ws.close();
  expect(await link.next()).toEqual({ type: 'desktop', connected: false });
  link.ws.close();
});

it('answers a frame for a stream it does not know with unknown_stream and keeps relaying on the same link', async () => {
  const desktop = await connectDesktop(proxy);
  const link = await openRawLink(proxy);
  link.ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION }));
  link.ws.send(encodeData('nobody', Buffer.from('stray bytes')), { binary: true });
  expect(await nextOf(link, 'error')).toMatchObject({ id: 'nobody', code: TunnelErrorCode.UnknownStream });
  link.ws.send(encodeLinkMessage({ type: 'window', id: 'nobody', bytes: 10 }));
  expect(await nextOf(link, 'error')).toMatchObject({ id: 'nobody', code: TunnelErrorCode.UnknownStream });

  link.ws.send(encodeLinkMessage({ type: 'http_request', id: 's1', method: 'GET', path: '/api/tags', headers: {}, end: true }));
  const request = await nextDesktop(desktop, 'http_request');
  expect(request).toMatchObject({ method: 'GET', path: '/api/tags' });
  if (request.type !== 'http_request') throw new Error('unreachable');
  desktop.ws.send(JSON.stringify({ type: 'http_response', id: request.id, status: 200, headers: { 'content-type': 'application/json' }, end: true }));
  expect(await nextOf(link, 'http_response')).toMatchObject({ id: 's1', status: 200, end: true });
  expect(proxy.stats.requests).toBe(1);
  link.ws.close();
});

it('closes the link with 1008 when api-backend sends past its credit, and the desktop is told to cancel', async () => {
  const desktop = await connectDesktop(proxy);
  const link = await openRawLink(proxy);
  link.ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION }));
  link.ws.send(encodeLinkMessage({ type: 'http_request', id: 'up', method: 'POST', path: '/api/pull', headers: {}, end: false }));
  const request = await nextDesktop(desktop, 'http_request');
  // The desktop grants nothing: after its first window the proxy holds what comes, and grants no more.
  const chunk = Buffer.alloc(MAX_CHUNK_BYTES, 7);
  const frames = Math.ceil((3 * INITIAL_WINDOW) / MAX_CHUNK_BYTES) + 2;
  for (let i = 0; i < frames; i++) link.ws.send(encodeData('up', chunk), { binary: true });
  expect((await link.closed).code).toBe(FLOW_CONTROL_CLOSE_CODE);
  expect(await nextDesktop(desktop, 'cancel')).toMatchObject({ id: request.id });
});

it('refuses a hello of another protocol version, closing with a reason that names both', async () => {
  const link = await openRawLink(proxy);
  await nextOf(link, 'desktop');
  link.ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION + 1 }));
  const closed = await link.closed;
  expect(closed.code).toBe(LINK_VERSION_CLOSE_CODE);
  expect(closed.reason).toBe(
    `protocol version mismatch: streaming-proxy speaks ${PROTOCOL_VERSION}, api-backend speaks ${PROTOCOL_VERSION + 1}; run one release of both`,
  );
});

it('takes the frame link only from api-backend: an upgrade without the secret is refused', async () => {
  const answer = await new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}${PROXY_LINK_PATH}`);
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => reject(new Error('the upgrade was taken')));
    ws.on('error', () => undefined);
  });
  expect(answer).toBe(401);
});
