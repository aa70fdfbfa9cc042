/**
 * The proxy's end of a desktop's WebSocket tunnel (tunnel/ws-link.ts): what happens to the
 * tunnel and to the requests on it when the desktop sends garbage, stops answering pings, or
 * goes away mid-answer. A real proxy server in this process, raw WebSockets playing the desktop.
 */
import type http from 'node:http';
import WebSocket from 'ws';
import { encodeControl, encodeData, PROXY_SECRET_HEADER, TunnelErrorCode, type ControlMessage } from '@ctll/protocol';
import { callRelay, connectDesktop, SECRET, startProxy, type RawDesktop, type TestProxy } from './helpers/proxy';
import { waitUntil, within } from './helpers/wait';

let proxy: TestProxy;
beforeEach(async () => {
  proxy = await startProxy({ PROXY_PING_INTERVAL_MS: '300' });
});
afterEach(() => proxy.close());

async function nextOfType<T extends ControlMessage['type']>(desktop: RawDesktop, type: T): Promise<Extract<ControlMessage, { type: T }>> {
  for (;;) {
    const message = await desktop.next();
    if (message.type === type) return message as Extract<ControlMessage, { type: T }>;
  }
}

function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

it('answers a malformed control message with bad_message and keeps the tunnel serving requests', async () => {
  const desktop = await connectDesktop(proxy);
  desktop.ws.send('{"type":"http_response","id":42}');
  expect(await nextOfType(desktop, 'error')).toMatchObject({ code: TunnelErrorCode.BadMessage });
  desktop.ws.send(Buffer.from([0x7f, 0x00, 0x01]), { binary: true });
  expect(await nextOfType(desktop, 'error')).toMatchObject({ code: TunnelErrorCode.BadMessage });
  const res = callRelay(proxy, '/still-up');
  const request = await nextOfType(desktop, 'http_request');
  desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
  desktop.ws.send(encodeData(request.id, Buffer.from('fine')));
  desktop.ws.send(encodeControl({ type: 'end', id: request.id }));
  expect(await readBody(await res)).toBe('fine');
  desktop.ws.close();
});

it('closes a tunnel that keeps sending malformed messages with 1008', async () => {
  const desktop = await connectDesktop(proxy);
  for (let i = 0; i < 40; i++) desktop.ws.send('not json');
  expect(await desktop.closed).toEqual({ code: 1008, reason: 'too many malformed messages' });
  await waitUntil(() => proxy.hub.count('ws') === 0, 'the tunnel is gone from the hub');
});

it('drops a desktop that stops answering pings, and its waiting caller gets 503 desktop_disconnected at once, not a timeout', async () => {
  // autoPong off: the socket is open but the desktop behind it is gone (a frozen bridge, a dead NAT).
  const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/ws/tunnel`, { headers: { [PROXY_SECRET_HEADER]: SECRET }, autoPong: false });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  const res = await callRelay(proxy, '/waiting');
  expect(res.statusCode).toBe(503);
  expect(JSON.parse(await readBody(res))).toMatchObject({ error: { code: 'desktop_disconnected' } });
  expect(await closed).toBe(1006);
  expect(proxy.hub.count('ws')).toBe(0);
});

it('keeps a desktop that answers pings, however long it is idle', async () => {
  const desktop = await connectDesktop(proxy);
  // Five ping intervals of silence on the tunnel: the ws client answers each ping by itself.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  expect(desktop.ws.readyState).toBe(WebSocket.OPEN);
  expect(proxy.hub.count('ws')).toBe(1);
  desktop.ws.close();
});

it('fails a request still waiting for its answer with 503 desktop_disconnected when the desktop disconnects', async () => {
  const desktop = await connectDesktop(proxy);
  const res = callRelay(proxy, '/left');
  await nextOfType(desktop, 'http_request');
  desktop.ws.terminate();
  const answer = await res;
  expect(answer.statusCode).toBe(503);
  expect(JSON.parse(await readBody(answer))).toMatchObject({ error: { code: 'desktop_disconnected' } });
  expect(proxy.stats.activeExchanges).toBe(0);
});

it('cuts an answer already streaming when the desktop disconnects, so the caller sees an incomplete body rather than a clean end', async () => {
  const desktop = await connectDesktop(proxy);
  const res = callRelay(proxy, '/half');
  const request = await nextOfType(desktop, 'http_request');
  desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
  desktop.ws.send(encodeData(request.id, Buffer.from('half of it')));
  const answer = await res;
  expect(answer.statusCode).toBe(200);
  const outcome = new Promise<string>((resolve) => {
    answer.on('end', () => resolve('ended'));
    answer.on('error', () => resolve('aborted'));
    answer.on('aborted', () => resolve('aborted'));
  });
  answer.resume();
  desktop.ws.terminate();
  expect(await within(outcome, 5000, 'still streaming')).toBe('aborted');
});
