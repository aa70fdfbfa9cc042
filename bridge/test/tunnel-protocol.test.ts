/**
 * The bridge's side of the tunnel protocol, against a relay scripted by hand (fake-relay.ts) and a
 * real local HTTP server: bad frames, flow control both ways, cancel, liveness, refused upgrades,
 * and a corporate proxy in the way.
 */
import { INITIAL_WINDOW, MAX_CHUNK_BYTES, type ControlMessage } from '@ctll/protocol';
import { StatusPrinter, startBridge, type Bridge, type BridgeOptions, type BridgeStatus } from '../src';
import { startFakeRelay, type FakeRelay, type Peer } from './fake-relay';
import { eventually, startConnectProxy, startTarget, type Target } from './helpers';

let target: Target;
let relay: FakeRelay;
const bridges: Bridge[] = [];

function bridgeTo(server: string, options: Partial<BridgeOptions> = {}): Bridge {
  const bridge = startBridge({
    server,
    token: 'tok-123',
    target: target.url,
    backoff: { stepsMs: [30, 60], jitter: 0 },
    ...options,
  });
  bridges.push(bridge);
  return bridge;
}

const isType =
  <K extends ControlMessage['type']>(type: K, id?: string) =>
  (message: ControlMessage): message is Extract<ControlMessage, { type: K }> =>
    message.type === type && (id === undefined || ('id' in message && message.id === id));

beforeAll(async () => {
  target = await startTarget();
  relay = await startFakeRelay();
});

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
  relay.forgetPending();
});

afterAll(async () => {
  await relay.close();
  await target.close();
});

async function connectedPeer(options: Partial<BridgeOptions> = {}): Promise<{ bridge: Bridge; peer: Peer }> {
  const bridge = bridgeTo(relay.url, options);
  const peer = await relay.nextPeer();
  await bridge.waitConnected();
  return { bridge, peer };
}

describe('tunnel protocol, bridge side', () => {
  it('dials /ws/tunnel with the bearer token and its user agent', async () => {
    const { peer } = await connectedPeer();
    expect(peer.request.url).toBe('/ws/tunnel');
    expect(peer.request.headers.authorization).toBe('Bearer tok-123');
    expect(peer.request.headers['user-agent']).toMatch(/^ctll-bridge\/\S+ \(\w+; node [\d.]+\)$/);
    expect(peer.request.headers['sec-websocket-extensions']).toBeUndefined(); // no compression
  });

  it('answers malformed frames with bad_message and keeps serving', async () => {
    const { bridge, peer } = await connectedPeer();
    peer.send('this is not json');
    await peer.waitFor((m) => m.type === 'error' && m.code === 'bad_message' && m.message === 'not valid JSON');
    peer.send(JSON.stringify({ type: 'http_request', id: 'bad id!' }));
    peer.ws.send(Buffer.from([0x07, 0x01, 0x41]), { binary: true });
    await peer.waitFor((m) => m.type === 'error' && /unknown binary frame kind/.test(m.message));
    peer.send({ type: 'http_response', id: 'x1', status: 200, headers: {}, end: true });
    await peer.waitFor((m) => m.type === 'error' && m.id === 'x1' && m.code === 'bad_message');
    peer.send({ type: 'ping', ts: 42 });
    await peer.waitFor((m) => m.type === 'pong' && m.ts === 42);
    peer.send({ type: 'http_request', id: 'ok1', method: 'GET', path: '/json/1', headers: {}, end: true });
    await peer.waitFor(isType('end', 'ok1'));
    expect(bridge.connected).toBe(true);
  });

  it('stops reading the answer when out of credit and resumes on window', async () => {
    const { peer } = await connectedPeer();
    const size = 3 * INITIAL_WINDOW;
    peer.send({ type: 'http_request', id: 'big', method: 'GET', path: `/bytes/${size}`, headers: {}, end: true });
    const head = await peer.waitFor(isType('http_response', 'big'));
    expect(head).toMatchObject({ status: 200, end: false });
    await eventually(() => peer.bytes('big') >= INITIAL_WINDOW);
    // Give the bridge every chance to overspend; it may overshoot by at most one chunk.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(peer.bytes('big')).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_CHUNK_BYTES);
    // Credit back exactly what arrived, as a relay does once its caller took it (more would be forged).
    let granted = 0;
    await eventually(() => {
      const owed = peer.bytes('big') - granted;
      if (owed > 0) peer.send({ type: 'window', id: 'big', bytes: owed });
      granted += Math.max(0, owed);
      return peer.bytes('big') === size;
    });
    await peer.waitFor(isType('end', 'big'));
    expect(peer.bytes('big')).toBe(size);
  });

  it('gives credit for the request body once the local server has taken it', async () => {
    const { peer } = await connectedPeer();
    peer.send({ type: 'http_request', id: 'up', method: 'POST', path: '/echo', headers: {}, end: false });
    const chunk = Buffer.alloc(MAX_CHUNK_BYTES, 7);
    for (let sent = 0; sent < INITIAL_WINDOW; sent += chunk.byteLength) peer.sendData('up', chunk);
    const window = await peer.waitFor(isType('window', 'up'));
    expect(window.bytes).toBeGreaterThanOrEqual(INITIAL_WINDOW / 2);
    peer.send({ type: 'end', id: 'up' });
    // The echo spends the whole window for the answer; the rest (its end) waits for credit.
    await eventually(() => peer.bytes('up') === INITIAL_WINDOW);
    peer.send({ type: 'window', id: 'up', bytes: INITIAL_WINDOW });
    await peer.waitFor(isType('end', 'up'));
    expect(peer.bytes('up')).toBe(INITIAL_WINDOW);
  });

  it('aborts the local request on cancel and when the tunnel closes', async () => {
    const { bridge, peer } = await connectedPeer();
    const cancelled = target.closed('k1');
    peer.send({ type: 'http_request', id: 'k1', method: 'GET', path: '/hang/k1', headers: {}, end: true });
    await peer.waitFor(isType('http_response', 'k1'));
    peer.send({ type: 'cancel', id: 'k1', reason: 'client disconnected' });
    await cancelled;
    await eventually(() => bridge.stats.active === 0);

    const orphaned = target.closed('k2');
    peer.send({ type: 'http_request', id: 'k2', method: 'GET', path: '/hang/k2', headers: {}, end: true });
    await peer.waitFor(isType('http_response', 'k2'));
    peer.ws.terminate();
    await orphaned;
  });

  it('reports a local server that is down as target_unreachable', async () => {
    const { peer } = await connectedPeer({ target: 'http://127.0.0.1:1' });
    peer.send({ type: 'http_request', id: 'dn', method: 'GET', path: '/api/tags', headers: {}, end: true });
    const error = await peer.waitFor(isType('error', 'dn'));
    expect(error).toMatchObject({ code: 'target_unreachable', message: 'could not reach http://127.0.0.1:1: ECONNREFUSED' });
  });

  it('reports a local server that fails mid-answer as target_failed', async () => {
    const { bridge, peer } = await connectedPeer();
    peer.send({ type: 'http_request', id: 'die', method: 'GET', path: '/die', headers: {}, end: true });
    const error = await peer.waitFor(isType('error', 'die'));
    expect(error.code).toBe('target_failed');
    expect(peer.controls.filter(isType('http_response', 'die'))).toHaveLength(1);
    expect(peer.bytes('die')).toBe('partial\n'.length);
    expect(bridge.stats).toMatchObject({ active: 0 });
  });

  it('takes a silent relay for dead and reconnects', async () => {
    const statuses: BridgeStatus[] = [];
    const { peer } = await connectedPeer({ pingTimeoutMs: 300, onStatus: (status) => statuses.push(status) });
    // A relay whose host vanished: nothing is read, so not even our probe ping is answered.
    peer.ws.pause();
    const second = await relay.nextPeer();
    expect(statuses.find((status) => status.state === 'retrying')?.reason).toBe('no sign of life from the relay for 0.3 s');
    second.ws.close();
  });

  it('comes back at once when the relay says it is restarting (1012), however short the tunnel lived', async () => {
    const statuses: BridgeStatus[] = [];
    // Backoff 30 ms, then a minute; a tunnel counts as stable only after a minute.
    bridgeTo(relay.url, { backoff: { stepsMs: [30, 60_000], jitter: 0 }, stableAfterMs: 60_000, onStatus: (status) => statuses.push(status) });
    const first = await relay.nextPeer();
    first.ws.close(1011, 'internal error');
    const second = await relay.nextPeer();
    // Another early close would now wait the full minute; a restarting relay resets the schedule.
    second.ws.close(1012, 'relay restarting');
    const third = await relay.nextPeer();
    const retries = statuses.filter((status) => status.state === 'retrying');
    expect(retries.map((status) => [status.reason, status.retryInMs])).toEqual([
      ['relay closed 1011 internal error', 30],
      ['relay closed 1012 relay restarting', 30],
    ]);
    third.ws.close();
  });

  it('explains a refused token once, and keeps retrying', async () => {
    const refusing = await startFakeRelay({
      status: 401,
      body: JSON.stringify({ error: { code: 'unauthorized', message: 'jwt expired' } }),
    });
    const lines: string[] = [];
    const printer = new StatusPrinter('text', { write: (text: string) => lines.push(text) });
    const bridge = bridgeTo(refusing.url, { onStatus: (status) => printer.status(status) });
    try {
      await eventually(() => refusing.upgrades.length >= 4);
      expect(bridge.connected).toBe(false);
      const refusals = lines.filter((line) => line.includes('refused'));
      expect(refusals).toHaveLength(1);
      expect(refusals[0]).toMatch(/^ctll-bridge: disconnected \(the relay refused the token: 401 unauthorized: jwt expired\); retrying in /);
      await expect(bridge.waitConnected(50)).rejects.toThrow(/not connected within 50 ms \(last attempt: the relay refused the token/);
    } finally {
      await bridge.close();
      await refusing.close();
    }
  });

  it('reaches the relay through an HTTP CONNECT proxy', async () => {
    const proxy = await startConnectProxy();
    try {
      const { bridge, peer } = await connectedPeer({ proxyEnv: { httpProxy: proxy.url } });
      expect(bridge.proxy).toBe(proxy.url);
      expect(proxy.connects).toEqual([new URL(relay.url).host]);
      peer.send({ type: 'http_request', id: 'px', method: 'GET', path: '/json/3', headers: {}, end: true });
      await peer.waitFor(isType('end', 'px'));
      await bridge.close();
    } finally {
      proxy.close();
    }
  });
});
