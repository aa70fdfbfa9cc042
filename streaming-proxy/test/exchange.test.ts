/**
 * One relayed exchange when the desktop's answer head is wrong: a real proxy server in this
 * process, a raw WebSocket playing the desktop, a plain HTTP caller. Whatever the desktop sends,
 * the caller gets a whole answer: the desktop's, or the relay's JSON error.
 */
import type http from 'node:http';
import { encodeControl, type ControlMessage } from '@ctll/protocol';
import { callRelay, connectDesktop, startProxy, type RawDesktop, type TestProxy } from './helpers/proxy';

let proxy: TestProxy;
beforeAll(async () => {
  proxy = await startProxy();
});
afterAll(() => proxy.close());

async function nextRequest(desktop: RawDesktop): Promise<Extract<ControlMessage, { type: 'http_request' }>> {
  for (;;) {
    const message = await desktop.next();
    if (message.type === 'http_request') return message;
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

it.each([204, 304, 200])('a desktop answering %i with a header name HTTP forbids: the caller reads a whole 502 bad_response error, not a body that never comes', async (status) => {
  const desktop = await connectDesktop(proxy);
  const caller = callRelay(proxy, '/bad-head');
  const request = await nextRequest(desktop);
  desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status, headers: { 'x-ok': '1', 'bad[name': 'v' }, end: true }));
  const res = await caller;
  expect(res.statusCode).toBe(502);
  expect(res.statusMessage).toBe('Bad Gateway');
  expect(JSON.parse(await readBody(res))).toMatchObject({ error: { code: 'bad_response' } });
  // The desktop is told the stream is over, and the link stays up for the next request.
  expect(await desktop.next()).toMatchObject({ type: 'cancel', id: request.id });
  const next = callRelay(proxy, '/after');
  const second = await nextRequest(desktop);
  desktop.ws.send(encodeControl({ type: 'http_response', id: second.id, status: 200, headers: {}, end: true }));
  expect((await next).statusCode).toBe(200);
  desktop.ws.close();
});
