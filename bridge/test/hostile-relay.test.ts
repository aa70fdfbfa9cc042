/**
 * A relay that breaks flow control, against the real bridge and a real local server: the bridge
 * drops the connection (1008 "flow control violated" on the WebSocket), connects again, and never
 * buffers what the relay floods it with.
 */
import { INITIAL_WINDOW, MAX_CHUNK_BYTES, encodeData } from '@ctll/protocol';
import { startBridge, type Bridge, type BridgeOptions } from '../src';
import { startFakeRelay, type FakeRelay } from './fake-relay';
import { data, startFakePollRelay, type FakePollRelay } from './fake-poll-relay';
import { startTarget, type Target } from './helpers';

let target: Target;
const bridges: Bridge[] = [];

function bridgeTo(server: string, options: Partial<BridgeOptions> = {}): Bridge {
  const bridge = startBridge({ server, token: 'tok-123', target: target.url, backoff: { stepsMs: [30, 60], jitter: 0 }, ...options });
  bridges.push(bridge);
  return bridge;
}

beforeAll(async () => {
  target = await startTarget();
});
afterEach(async () => {
  await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
});
afterAll(() => target.close());

describe('a relay that ignores the credit on the WebSocket', () => {
  let relay: FakeRelay;
  beforeEach(async () => {
    relay = await startFakeRelay();
  });
  afterEach(() => relay.close());

  it('gets the tunnel closed with 1008 "flow control violated" when it floods a request body, and the bridge reconnects without having buffered the flood', async () => {
    const bridge = bridgeTo(relay.url);
    const peer = await relay.nextPeer();
    await bridge.waitConnected();
    const closed = new Promise<{ code: number; reason: string }>((resolve) => peer.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    // /hang never reads its request body: whatever the bridge accepted past the socket buffers it would hold.
    peer.send({ type: 'http_request', id: 'flood', method: 'POST', path: '/hang/flood', headers: {}, end: false });
    const frame = encodeData('flood', Buffer.alloc(MAX_CHUNK_BYTES, 0x66));
    const rssBefore = process.memoryUsage().rss;
    let sent = 0;
    let open = true;
    void closed.then(() => (open = false));
    while (open && sent < 256 * 1024 * 1024) {
      peer.ws.send(frame, { binary: true });
      sent += MAX_CHUNK_BYTES;
      if (peer.ws.bufferedAmount > 4 * 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(await closed).toEqual({ code: 1008, reason: 'flow control violated' });
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(32 * 1024 * 1024);
    const again = await relay.nextPeer();
    await bridge.waitConnected();
    again.send({ type: 'http_request', id: 'after', method: 'GET', path: '/json/3', headers: {}, end: true });
    await again.waitFor((m) => m.type === 'end' && m.id === 'after');
  });

  it('gets the tunnel closed with 1008 when it grants more credit for an answer than the bridge sent', async () => {
    const bridge = bridgeTo(relay.url);
    const peer = await relay.nextPeer();
    await bridge.waitConnected();
    const closed = new Promise<{ code: number; reason: string }>((resolve) => peer.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    peer.send({ type: 'http_request', id: 'big', method: 'GET', path: `/bytes/${3 * INITIAL_WINDOW}`, headers: {}, end: true });
    await peer.waitFor((m) => m.type === 'http_response' && m.id === 'big');
    peer.send({ type: 'window', id: 'big', bytes: 2 ** 31 });
    expect(await closed).toEqual({ code: 1008, reason: 'flow control violated' });
    await relay.nextPeer();
    await bridge.waitConnected();
  });
});

describe('a relay that puts more than a window of one stream in a poll answer', () => {
  let relay: FakePollRelay;
  beforeEach(async () => {
    relay = await startFakePollRelay({ pollTimeoutMs: 500, heartbeatIntervalMs: 100 });
  });
  afterEach(() => relay.close());

  it('loses the connection: the bridge registers again and serves on the new one', async () => {
    const bridge = bridgeTo(relay.url, { transport: 'poll' });
    await bridge.waitConnected();
    const chunk = Buffer.alloc(MAX_CHUNK_BYTES, 0x66);
    relay.send([
      { type: 'http_request', id: 'flood', method: 'POST', path: '/hang/flood', headers: {}, end: false },
      ...Array.from({ length: 64 }, () => data('flood', chunk)),
    ]);
    await relay.until(() => relay.registrations.length === 2, 10_000);
    await bridge.waitConnected();
    relay.send([{ type: 'http_request', id: 'after', method: 'GET', path: '/json/5', headers: {}, end: true }]);
    expect((await relay.answer('after')).head).toMatchObject({ status: 200 });
  });
});
