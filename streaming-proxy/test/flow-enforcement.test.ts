/**
 * The proxy enforces flow-control credit instead of trusting the desktop: a real proxy server in
 * this process, a raw WebSocket playing a desktop that breaks the rules, and plain HTTP callers.
 */
import http from 'node:http';
import {
  encodeControl,
  encodeData,
  INITIAL_WINDOW,
  MAX_CHUNK_BYTES,
  MAX_OVERSHOOT_BYTES,
  PROXY_SECRET_HEADER,
  RecordReader,
  decodeFrame,
  type ControlMessage,
} from '@ctll/protocol';
import { callRelay, connectDesktop, SECRET, startProxy, type RawDesktop, type TestProxy } from './helpers/proxy';

let proxy: TestProxy;

beforeEach(async () => {
  proxy = await startProxy();
});
afterEach(() => proxy.close());

async function nextOfType<T extends ControlMessage['type']>(desktop: RawDesktop, type: T): Promise<Extract<ControlMessage, { type: T }>> {
  for (;;) {
    const message = await desktop.next();
    if (message.type === type) return message as Extract<ControlMessage, { type: T }>;
  }
}

function readAll(res: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('aborted')));
  });
}

describe('a desktop on the WebSocket tunnel', () => {
  it('is closed with 1008 "flow control violated" when it sends an answer past its credit, and the proxy takes no more than a window past what it granted', async () => {
    const desktop = await connectDesktop(proxy);
    const response = callRelay(proxy, '/flood');
    const request = await nextOfType(desktop, 'http_request');
    let granted = 0;
    desktop.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const message = JSON.parse(data.toString()) as ControlMessage;
      if (message.type === 'window') granted += message.bytes;
    });
    desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
    const res = await response;
    res.pause(); // the caller does not read: nothing drains, so no credit comes back past the socket buffers
    const frame = encodeData(request.id, Buffer.alloc(MAX_CHUNK_BYTES, 0x61));
    let sent = 0;
    while (desktop.ws.readyState === desktop.ws.OPEN && sent < 256 * 1024 * 1024) {
      desktop.ws.send(frame);
      sent += MAX_CHUNK_BYTES;
      if (desktop.ws.bufferedAmount > 8 * 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const closed = await desktop.closed;
    expect(closed).toEqual({ code: 1008, reason: 'flow control violated' });
    expect(proxy.stats.bytesFromDesktop - granted).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_OVERSHOOT_BYTES);
    expect(proxy.hub.info()).toEqual([]);
    res.resume();
    res.on('error', () => undefined);
  });

  it('is closed with 1008 when it grants more credit for a request body than the proxy sent (a forged window)', async () => {
    const desktop = await connectDesktop(proxy);
    const response = callRelay(proxy, '/upload', Buffer.from('ten bytes!'));
    const request = await nextOfType(desktop, 'http_request');
    desktop.ws.send(encodeControl({ type: 'window', id: request.id, bytes: 2 ** 31 }));
    expect(await desktop.closed).toEqual({ code: 1008, reason: 'flow control violated' });
    const res = await response;
    expect(res.statusCode).toBe(503);
    expect(JSON.parse((await readAll(res)).toString())).toMatchObject({ error: { code: 'desktop_disconnected' } });
  });

  it('keeps the tunnel up when data arrives for an unknown or finished stream (it may cross a cancel)', async () => {
    const desktop = await connectDesktop(proxy);
    desktop.ws.send(encodeData('t0.999', Buffer.alloc(MAX_CHUNK_BYTES)));
    const first = callRelay(proxy, '/one');
    const request = await nextOfType(desktop, 'http_request');
    desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 204, headers: {}, end: true }));
    expect((await first).statusCode).toBe(204);
    // Finished: a window's worth of late data for it is dropped, not counted against anyone.
    for (let i = 0; i < 40; i++) desktop.ws.send(encodeData(request.id, Buffer.alloc(MAX_CHUNK_BYTES)));
    const second = callRelay(proxy, '/two');
    const again = await nextOfType(desktop, 'http_request');
    desktop.ws.send(encodeControl({ type: 'http_response', id: again.id, status: 200, headers: {}, end: false }));
    desktop.ws.send(encodeData(again.id, Buffer.from('still here')));
    desktop.ws.send(encodeControl({ type: 'end', id: again.id }));
    expect((await readAll(await second)).toString()).toBe('still here');
    expect(desktop.ws.readyState).toBe(desktop.ws.OPEN);
  });

  it('answers 502 bad_response when the desktop answers with an informational (1xx) status instead of a final one', async () => {
    const desktop = await connectDesktop(proxy);
    const response = callRelay(proxy, '/early-hints');
    const request = await nextOfType(desktop, 'http_request');
    desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 103, headers: {}, end: false }));
    const res = await response;
    expect(res.statusCode).toBe(502);
    expect(JSON.parse((await readAll(res)).toString())).toMatchObject({ error: { code: 'bad_response' } });
    expect(await nextOfType(desktop, 'cancel')).toMatchObject({ id: request.id });
  });

  it('streams an answer many windows long to a slow caller when the desktop keeps to its credit', async () => {
    const desktop = await connectDesktop(proxy);
    const response = callRelay(proxy, '/big');
    const request = await nextOfType(desktop, 'http_request');
    const total = 8 * INITIAL_WINDOW;
    let credit = INITIAL_WINDOW;
    let sent = 0;
    const pump = () => {
      while (credit > 0 && sent < total) {
        const size = Math.min(MAX_CHUNK_BYTES, total - sent);
        desktop.ws.send(encodeData(request.id, Buffer.alloc(size, sent % 251)));
        credit -= size;
        sent += size;
      }
      if (sent === total) desktop.ws.send(encodeControl({ type: 'end', id: request.id }));
    };
    desktop.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const message = JSON.parse(data.toString()) as ControlMessage;
      if (message.type === 'window' && sent < total) {
        credit += message.bytes;
        pump();
      }
    });
    desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: {}, end: false }));
    pump();
    const res = await response;
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      res.on('data', (chunk: Buffer) => {
        received += chunk.byteLength;
        res.pause();
        setTimeout(() => res.resume(), 1); // a slow reader
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
    expect(received).toBe(total);
    expect(desktop.ws.readyState).toBe(desktop.ws.OPEN);
  });
});

describe('a desktop on the long-poll transport', () => {
  async function post(path: string, body: unknown): Promise<{ status: number; json: unknown }> {
    const res = await fetch(`${proxy.url}${path}`, {
      method: 'POST',
      headers: { [PROXY_SECRET_HEADER]: SECRET, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  }

  it('cannot forge request-body credit with window messages in a heartbeat: a poll never carries more than a window of one stream', async () => {
    const registered = await post('/bridge/register', {});
    const bridgeId = (registered.json as { bridgeId: string }).bridgeId;
    const upload = Buffer.alloc(6 * INITIAL_WINDOW, 0x62);
    const response = callRelay(proxy, '/upload', upload);
    response.catch(() => undefined);
    const poll = async (): Promise<Buffer[]> => {
      const res = await fetch(`${proxy.url}/bridge/poll/${bridgeId}`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
      const reader = new RecordReader();
      const records = reader.push(Buffer.from(await res.arrayBuffer()));
      if (!records.ok) throw new Error(records.error);
      return records.value;
    };
    const first = await poll();
    const head = decodeFrame(first[0]);
    if (!head.ok || head.value.kind !== 'control' || head.value.message.type !== 'http_request') throw new Error('expected the request first');
    const id = head.value.message.id;
    // The proxy already granted itself the delivered bytes; this would be on top of them.
    expect((await post(`/bridge/heartbeat/${bridgeId}`, { messages: [{ type: 'window', id, bytes: 2 ** 30 }] })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = await poll();
    const bytes = second.reduce((sum, record) => {
      const frame = decodeFrame(record);
      return frame.ok && frame.value.kind === 'data' ? sum + frame.value.data.payload.byteLength : sum;
    }, 0);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_OVERSHOOT_BYTES);
  });

  it('refuses a second answer POST for a request whose answer is already streaming', async () => {
    const registered = await post('/bridge/register', {});
    const bridgeId = (registered.json as { bridgeId: string }).bridgeId;
    const response = callRelay(proxy, '/twice');
    response.catch(() => undefined);
    const res = await fetch(`${proxy.url}/bridge/poll/${bridgeId}`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
    const records = new RecordReader().push(Buffer.from(await res.arrayBuffer()));
    if (!records.ok) throw new Error(records.error);
    const frame = decodeFrame(records.value[0]);
    if (!frame.ok || frame.value.kind !== 'control' || !('id' in frame.value.message)) throw new Error('expected a request');
    const id = frame.value.message.id as string;
    // The first POST stays open without its head yet; the second must not interleave with it.
    const first = http.request(`${proxy.url}/bridge/respond/${bridgeId}/${id}`, { method: 'POST', headers: { [PROXY_SECRET_HEADER]: SECRET } });
    first.on('error', () => undefined);
    first.write(Buffer.from([0, 0]));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = await fetch(`${proxy.url}/bridge/respond/${bridgeId}/${id}`, {
      method: 'POST',
      headers: { [PROXY_SECRET_HEADER]: SECRET },
      body: Buffer.from('x'),
    });
    expect(second.status).toBe(404);
    first.destroy();
  });
});
