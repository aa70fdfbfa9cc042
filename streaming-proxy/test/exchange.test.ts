/**
 * One relayed request when the desktop's answer head is wrong: a real proxy server in this
 * process, a raw WebSocket playing the desktop, a plain HTTP caller through api-backend's frame
 * relay. Whatever the desktop sends, the caller gets a whole answer: the desktop's, or the relay's
 * JSON error.
 */
import http from 'node:http';
import { decodeData, encodeControl, encodeData, INITIAL_WINDOW, MAX_OVERSHOOT_BYTES, PROXY_SECRET_HEADER, type ControlMessage } from '@ctll/protocol';
import { callRelay, connectDesktop, startProxy, type RawDesktop, type TestProxy } from './helpers/proxy';
import { waitUntil, within } from './helpers/wait';

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
  // A head with its body still to come: the desktop's stream is open, so it must hear that it is over.
  desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status, headers: { 'x-ok': '1', 'bad[name': 'v' }, end: false }));
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

async function nextOfType<T extends ControlMessage['type']>(desktop: RawDesktop, type: T): Promise<Extract<ControlMessage, { type: T }>> {
  for (;;) {
    const message = await desktop.next();
    if (message.type === type) return message as Extract<ControlMessage, { type: T }>;
  }
}

/** How an answer's body ended: cleanly, or cut (the caller can tell a truncated answer). */
function outcome(res: http.IncomingMessage): Promise<'ended' | 'aborted'> {
  return new Promise((resolve) => {
    res.on('end', () => resolve('ended'));
    res.on('error', () => resolve('aborted'));
    res.on('aborted', () => resolve('aborted'));
    res.resume();
  });
}

describe('a desktop that misbehaves on one stream', () => {
  it('answers 502 bad_response and cancels the stream when body data comes before the response head', async () => {
    const desktop = await connectDesktop(proxy);
    const caller = callRelay(proxy, '/headless');
    const request = await nextRequest(desktop);
    desktop.ws.send(encodeData(request.id, Buffer.from('body first')));
    const res = await caller;
    expect(res.statusCode).toBe(502);
    expect(JSON.parse(await readBody(res))).toMatchObject({ error: { code: 'bad_response' } });
    expect(await nextOfType(desktop, 'cancel')).toMatchObject({ id: request.id, reason: 'data before http_response' });
    desktop.ws.close();
  });

  it('answers 502 bad_response when the desktop ends a stream it never answered', async () => {
    const desktop = await connectDesktop(proxy);
    const caller = callRelay(proxy, '/silent-end');
    const request = await nextRequest(desktop);
    desktop.ws.send(encodeControl({ type: 'end', id: request.id }));
    const res = await caller;
    expect(res.statusCode).toBe(502);
    expect(JSON.parse(await readBody(res))).toMatchObject({ error: { code: 'bad_response' } });
    desktop.ws.close();
  });

  it.each([
    ['target_unreachable', 502],
    ['bad_path', 400],
  ])("gives the caller the desktop's %s error with the catalogue's status %i", async (code, status) => {
    const desktop = await connectDesktop(proxy);
    const caller = callRelay(proxy, '/err');
    const request = await nextRequest(desktop);
    desktop.ws.send(encodeControl({ type: 'error', id: request.id, code, message: 'from the desktop' }));
    const res = await caller;
    expect(res.statusCode).toBe(status);
    expect(JSON.parse(await readBody(res))).toEqual({ error: { code, message: 'from the desktop' } });
    desktop.ws.close();
  });

  it('cuts an answer already streaming when the desktop reports an error on it, instead of ending it cleanly', async () => {
    const desktop = await connectDesktop(proxy);
    const caller = callRelay(proxy, '/mid-error');
    const request = await nextRequest(desktop);
    desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
    desktop.ws.send(encodeData(request.id, Buffer.from('partial')));
    const res = await caller;
    const ended = outcome(res);
    desktop.ws.send(encodeControl({ type: 'error', id: request.id, code: 'target_failed', message: 'the model crashed' }));
    expect(await within(ended, 5000, 'still streaming')).toBe('aborted');
    desktop.ws.close();
  });
});

describe('what reaches the desktop of a request', () => {
  it("never forwards the caller's credentials (authorization, cookie) or forwarding headers", async () => {
    const desktop = await connectDesktop(proxy);
    const req = http.request(`${proxy.relayUrl}/private`, {
      headers: { [PROXY_SECRET_HEADER]: 'guess', authorization: 'Bearer secret', cookie: 'session=1', 'x-forwarded-for': '10.0.0.1', 'x-kept': 'yes' },
    });
    req.on('error', () => undefined);
    req.end();
    const request = await nextRequest(desktop);
    expect(request.headers['x-kept']).toBe('yes');
    for (const name of ['authorization', 'cookie', 'x-forwarded-for', PROXY_SECRET_HEADER]) expect(request.headers).not.toHaveProperty(name);
    req.destroy();
    desktop.ws.close();
  });

  it('sends a request body no further than the credit the desktop granted, and all of it as the desktop grants more, then end', async () => {
    const desktop = await connectDesktop(proxy);
    const body = Buffer.alloc(3 * INITIAL_WINDOW + 123, 0x5a);
    let received = 0;
    let ended = false;
    let granting = false;
    let id = '';
    desktop.ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        if ((JSON.parse(data.toString()) as ControlMessage).type === 'end') ended = true;
        return;
      }
      const frame = decodeData(data as Buffer);
      if (!frame.ok) return;
      received += frame.value.payload.byteLength;
      // An honest desktop hands credit back for what it has passed on.
      if (granting) desktop.ws.send(encodeControl({ type: 'window', id, bytes: frame.value.payload.byteLength }));
    });
    const caller = callRelay(proxy, '/upload', body);
    caller.catch(() => undefined);
    const request = await nextRequest(desktop);
    id = request.id;
    expect(request.end).toBe(false);
    await waitUntil(() => received >= INITIAL_WINDOW, 'the first window arrived');
    // Without a grant nothing more comes, however long the desktop waits (the protocol lets the
    // last frame of a window run over by at most one frame).
    await new Promise((resolve) => setTimeout(resolve, 200));
    const firstWindow = received;
    expect(firstWindow).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_OVERSHOOT_BYTES);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toBe(firstWindow);
    granting = true;
    desktop.ws.send(encodeControl({ type: 'window', id, bytes: firstWindow }));
    await waitUntil(() => ended, 'the body ended');
    expect(received).toBe(body.byteLength);
    desktop.ws.send(encodeControl({ type: 'http_response', id, status: 204, headers: {}, end: true }));
    expect((await caller).statusCode).toBe(204);
    desktop.ws.close();
  });
});

describe('a caller or desktop that goes quiet', () => {
  let quiet: TestProxy;
  beforeAll(async () => {
    quiet = await startProxy({ REQUEST_TIMEOUT_MS: '600' });
  });
  afterAll(() => quiet.close());

  it('tells the desktop to cancel when the caller hangs up, so the model stops generating', async () => {
    const desktop = await connectDesktop(quiet);
    const req = http.request(`${quiet.relayUrl}/hang-up`);
    req.on('error', () => undefined);
    req.end();
    const request = await nextRequest(desktop);
    desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
    await new Promise((resolve) => req.once('response', resolve));
    req.destroy();
    expect(await nextOfType(desktop, 'cancel')).toEqual({ type: 'cancel', id: request.id, reason: 'client disconnected' });
    await waitUntil(() => quiet.stats.activeExchanges === 0, 'the exchange is over');
    desktop.ws.close();
  });

  it('answers 504 desktop_timeout and cancels the stream when the desktop never answers', async () => {
    const desktop = await connectDesktop(quiet);
    const caller = callRelay(quiet, '/no-answer');
    const request = await nextRequest(desktop);
    const res = await caller;
    expect(res.statusCode).toBe(504);
    expect(JSON.parse(await readBody(res))).toMatchObject({ error: { code: 'desktop_timeout' } });
    expect(await nextOfType(desktop, 'cancel')).toMatchObject({ id: request.id, reason: 'timeout' });
    desktop.ws.close();
  });

  it('cuts an answer that stalls mid-stream for longer than the timeout, and cancels it on the desktop', async () => {
    const desktop = await connectDesktop(quiet);
    const caller = callRelay(quiet, '/stall');
    const request = await nextRequest(desktop);
    desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
    desktop.ws.send(encodeData(request.id, Buffer.from('first token')));
    const res = await caller;
    expect(await outcome(res)).toBe('aborted');
    expect(await nextOfType(desktop, 'cancel')).toMatchObject({ id: request.id, reason: 'timeout' });
    desktop.ws.close();
  });

  it('does not time out an answer that keeps streaming for longer than the timeout in all', async () => {
    const desktop = await connectDesktop(quiet);
    const caller = callRelay(quiet, '/slow-but-steady');
    const request = await nextRequest(desktop);
    desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
    const res = await caller;
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    const ended = outcome(res);
    // Eight tokens 150 ms apart: 1.2 s in all, twice the 600 ms timeout, never more than 150 ms silent.
    for (let i = 0; i < 8; i++) {
      await new Promise((resolve) => setTimeout(resolve, 150));
      desktop.ws.send(encodeData(request.id, Buffer.from(`t${i} `)));
    }
    desktop.ws.send(encodeControl({ type: 'end', id: request.id }));
    expect(await ended).toBe('ended');
    expect(Buffer.concat(chunks).toString()).toBe('t0 t1 t2 t3 t4 t5 t6 t7 ');
    desktop.ws.close();
  });
});
