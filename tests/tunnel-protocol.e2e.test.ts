/**
 * A desktop that speaks the protocol badly: a hand-driven WebSocket in place of the bridge. Bad
 * messages get `error` answers or a close code, never a crash, and never disturb anyone else.
 */
import WebSocket from 'ws';
import { encodeControl, encodeData, parseControl, type ControlMessage } from '@ctll/protocol';
import { startLayout, type Layout } from './helpers/layout';

function openRawTunnel(layout: Layout, userId: string): Promise<{ ws: WebSocket; next: () => Promise<ControlMessage> }> {
  const ws = new WebSocket(`${layout.relay.url.replace('http', 'ws')}/ws/tunnel`, {
    headers: { authorization: `Bearer ${layout.token(userId)}` },
  });
  const queue: ControlMessage[] = [];
  const waiters: Array<(m: ControlMessage) => void> = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const parsed = parseControl(data.toString());
    if (!parsed.ok) throw new Error(`relay sent a bad message: ${parsed.error}`);
    const waiter = waiters.shift();
    if (waiter) waiter(parsed.value);
    else queue.push(parsed.value);
  });
  const next = () =>
    new Promise<ControlMessage>((resolve, reject) => {
      const queued = queue.shift();
      if (queued) return resolve(queued);
      const timer = setTimeout(() => reject(new Error('no message from the relay')), 5000);
      waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, next }));
    ws.once('error', reject);
  });
}

describe('malformed tunnel messages', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({ llm: { tokenDelayMs: 20, tokens: 30 } });
    await layout.connectBridge('bob');
  });
  afterAll(() => layout?.close());

  it('answers each bad message with an error and keeps serving, while another user streams undisturbed', async () => {
    const bobStream = layout.fetchAs('bob', '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) }).then((r) => r.text());
    const { ws, next } = await openRawTunnel(layout, 'mallory');

    ws.send('this is not json');
    expect(await next()).toMatchObject({ type: 'error', code: 'bad_message', message: 'not valid JSON' });
    ws.send(JSON.stringify({ type: 'http_response', id: 'x', status: 1000, headers: {}, end: true }));
    expect(await next()).toMatchObject({ type: 'error', code: 'bad_message' });
    ws.send(Buffer.from([0xff, 0x00, 0x01]));
    expect(await next()).toMatchObject({ type: 'error', code: 'bad_message' });
    ws.send(encodeData('no-such-stream', Buffer.from('stray bytes'))); // a race after cancel: dropped quietly

    // The same tunnel still relays a request it answers properly.
    const answer = layout.fetchAs('mallory', '/hello');
    const request = await next();
    expect(request).toMatchObject({ type: 'http_request', method: 'GET', path: '/hello', end: true });
    const id = (request as { id: string }).id;
    ws.send(encodeControl({ type: 'http_response', id, status: 200, headers: { 'content-type': 'text/plain' }, end: false }));
    ws.send(encodeData(id, Buffer.from('hi from a hand-made desktop')));
    ws.send(encodeControl({ type: 'end', id }));
    const res = await answer;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hi from a hand-made desktop');

    const bobText = await bobStream;
    expect(bobText.trim().split('\n')).toHaveLength(31);
    ws.close();
  });

  it('answers 502 when the desktop sends an invalid response head', async () => {
    const { ws, next } = await openRawTunnel(layout, 'mallory2');
    const answer = layout.fetchAs('mallory2', '/x');
    const request = (await next()) as { id: string };
    ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: { 'bad header': 'x' }, end: true }));
    const res = await answer;
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('bad_response');
    ws.close();
  });

  it('answers 502 at once, not after the silence timeout, when the desktop sends a 1xx head', async () => {
    const { ws, next } = await openRawTunnel(layout, 'mallory5');
    const began = Date.now();
    const answer = layout.fetchAs('mallory5', '/x');
    const request = (await next()) as { id: string };
    ws.send(encodeControl({ type: 'http_response', id: request.id, status: 103, headers: { link: '</a.css>; rel=preload' }, end: false }));
    const res = await answer;
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('bad_response');
    expect(await next()).toMatchObject({ type: 'cancel', id: request.id });
    // REQUEST_TIMEOUT_MS is 30 s here: the 1xx is refused the moment it arrives.
    expect(Date.now() - began).toBeLessThan(15_000);
    ws.close();
  });

  it('answers 400 bad_path when the desktop refuses a path above its target', async () => {
    const { ws, next } = await openRawTunnel(layout, 'mallory6');
    const answer = layout.fetchAs('mallory6', '/models');
    const request = (await next()) as { id: string };
    ws.send(encodeControl({ type: 'error', id: request.id, code: 'bad_path', message: 'the path climbs above http://127.0.0.1:8000/v1' }));
    const res = await answer;
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { code: 'bad_path', message: 'the path climbs above http://127.0.0.1:8000/v1' } });
    ws.close();
  });

  it('closes a tunnel that keeps sending garbage with 1008', async () => {
    const { ws } = await openRawTunnel(layout, 'mallory3');
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    for (let i = 0; i < 40; i++) ws.send('{');
    expect(await closed).toBe(1008);
  });

  it('ends an answer cut off by a vanished desktop as a broken stream, not a clean one', async () => {
    const { ws, next } = await openRawTunnel(layout, 'mallory4');
    const answer = layout.fetchAs('mallory4', '/stream');
    const request = (await next()) as { id: string };
    ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
    ws.send(encodeData(request.id, Buffer.from('partial')));
    const res = await answer;
    const reading = res.text();
    ws.terminate();
    await expect(reading).rejects.toThrow();
  });
});
