/**
 * The bridge's side of the long-poll transport, against a relay scripted by hand
 * (fake-poll-relay.ts) and a real local HTTP server: registration, streamed answers, records split
 * anywhere, polls sent ahead of the answer being read, bad frames, cancel, local failures,
 * re-registration, refused tokens, and holding back polls while a local server is slow to take a
 * request body.
 */
import { MAX_CHUNK_BYTES, MAX_STREAM_WINDOW, type ControlMessage } from '@ctll/protocol';
import { formatStatus, startBridge, VERSION, type Bridge, type BridgeOptions, type BridgeStatus } from '../src';
import { data, startFakePollRelay, type FakePollRelay } from './fake-poll-relay';
import { startConnectProxy, startTarget, type Target } from './helpers';

let target: Target;
let relay: FakePollRelay;
const bridges: Bridge[] = [];

async function pollingBridge(options: Partial<BridgeOptions> = {}, to: FakePollRelay = relay): Promise<Bridge> {
  const bridge = startBridge({
    server: to.url,
    token: 'tok-123',
    target: target.url,
    transport: 'poll',
    backoff: { stepsMs: [30, 60], jitter: 0 },
    ...options,
  });
  bridges.push(bridge);
  await bridge.waitConnected();
  return bridge;
}

const request = (id: string, method: string, path: string, end = true): ControlMessage => ({ type: 'http_request', id, method, path, headers: {}, end });
const body = (answer: { chunks: Array<{ bytes: Buffer }> }) => Buffer.concat(answer.chunks.map((chunk) => chunk.bytes));

beforeAll(async () => {
  target = await startTarget();
});

beforeEach(async () => {
  relay = await startFakePollRelay({ pollTimeoutMs: 500, heartbeatIntervalMs: 100 });
});

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
  await relay.close();
});

afterAll(() => target.close());

describe('long-poll transport, bridge side', () => {
  it('registers with the token, its client id, platform and version, then answers through a respond POST', async () => {
    const statuses: BridgeStatus[] = [];
    const bridge = await pollingBridge({ onStatus: (status) => statuses.push(status) });
    const [registration] = relay.registrations;
    expect(registration.headers.authorization).toBe('Bearer tok-123');
    expect(registration.headers['user-agent']).toMatch(/^ctll-bridge\/\S+ /);
    expect(registration.body).toEqual({ clientId: expect.stringMatching(/^[0-9a-f-]{36}$/), platform: process.platform, version: VERSION, whole: true, answers: true, window: MAX_STREAM_WINDOW });
    expect(formatStatus(statuses.at(-1)!)).toMatch(/^connected to http:\/\/127\.0\.0\.1:\d+ via long-poll · target /);

    relay.send([request('r1', 'GET', '/json/1')]);
    const answer = await relay.answer('r1');
    expect(answer.req.url).toBe('/api/bridge/respond/b1/r1');
    expect(answer.req.headers.authorization).toBe('Bearer tok-123');
    expect(answer.head).toMatchObject({ status: 200 });
    expect(JSON.parse(body(answer).toString())).toEqual({ n: 1, method: 'GET' });
    await relay.until(() => bridge.stats.served === 1);
  });

  it('streams the answer while the local server is still producing it', async () => {
    await pollingBridge();
    relay.send([request('s1', 'GET', '/stream/s1')]);
    const answer = await relay.answer('s1');
    expect(body(answer).toString().trim().split('\n')).toHaveLength(5);
    expect(answer.chunks.length).toBeGreaterThanOrEqual(3);
    expect(answer.chunks[0].at).toBeLessThan(target.finishedAt.get('s1')!);
  });

  it('reads several records from one answer, split at any byte', async () => {
    await pollingBridge();
    relay.send([request('e1', 'POST', '/echo', false), data('e1', Buffer.from('hello ')), data('e1', Buffer.from('world')), { type: 'end', id: 'e1' }], 3);
    expect(body(await relay.answer('e1')).toString()).toBe('hello world');
  });

  it('carries a request body without ever sending window messages', async () => {
    await pollingBridge();
    const chunk = Buffer.alloc(MAX_CHUNK_BYTES, 9);
    const frames = Array.from({ length: 48 }, () => data('big', chunk));
    // As the relay does: one poll answer carries at most a window of one stream's body.
    relay.send([request('big', 'POST', '/echo', false), ...frames.slice(0, 16)]);
    for (let next = 16; next < frames.length; next += 16) {
      const polls = relay.polls;
      await relay.until(() => relay.polls > polls);
      relay.send(frames.slice(next, next + 16));
    }
    relay.send([{ type: 'end', id: 'big' }]);
    const answer = await relay.answer('big', 10_000);
    expect(body(answer).equals(Buffer.alloc(48 * MAX_CHUNK_BYTES, 9))).toBe(true);
    expect(relay.heartbeatMessages.filter((m) => m.type === 'window')).toEqual([]);
  });

  it('sends the next poll while an answer still arrives, and reads the answers in the order they were given', async () => {
    await pollingBridge();
    const piece = (n: number) => data('ord', Buffer.alloc(100, n));
    // Written 64 bytes a millisecond: the first answer takes a while to arrive.
    relay.send([request('ord', 'POST', '/echo', false), ...Array.from({ length: 20 }, (_, n) => piece(n))], 64);
    // No round trip lost: the next poll is at the relay before this answer is all written...
    await relay.until(() => relay.pollWaiting);
    expect(relay.answerWriting).toBe(true);
    // ...and its answer, which arrives first, is read only after the one before it.
    relay.send([...Array.from({ length: 20 }, (_, n) => piece(20 + n)), { type: 'end', id: 'ord' }]);
    const echoed = body(await relay.answer('ord'));
    expect(echoed.equals(Buffer.concat(Array.from({ length: 40 }, (_, n) => Buffer.alloc(100, n))))).toBe(true);
  });

  it('starts over when an answer is cut off while the next one waits behind it', async () => {
    const bridge = await pollingBridge();
    const piece = (n: number) => data('cut', Buffer.alloc(100, n));
    relay.send([request('cut', 'POST', '/echo', false), ...Array.from({ length: 20 }, (_, n) => piece(n))], 64, 1024);
    await relay.until(() => relay.pollWaiting);
    // Arrives whole while the first is still coming, then must not be read once the first is lost.
    relay.send([piece(20), { type: 'end', id: 'cut' }]);
    await relay.until(() => relay.registrations.length === 2);
    await bridge.waitConnected();
    expect(relay.answers.get('cut')?.ended).not.toBe(true);
    relay.send([request('after-cut', 'GET', '/json/3')]);
    expect((await relay.answer('after-cut')).head).toMatchObject({ status: 200 });
  });

  it('answers malformed frames with bad_message on a heartbeat and keeps serving', async () => {
    const bridge = await pollingBridge();
    relay.send([Buffer.from([0x00, 0x6e, 0x6f]), Buffer.from([0x07, 0x01, 0x41])]);
    await relay.until(() => relay.heartbeatMessages.filter((m) => m.type === 'error' && m.code === 'bad_message').length === 2);
    expect(relay.heartbeatMessages).toContainEqual({ type: 'error', code: 'bad_message', message: 'unknown frame kind 0x7' });
    relay.send([request('ok1', 'GET', '/json/2')]);
    expect((await relay.answer('ok1')).head).toMatchObject({ status: 200 });
    expect(bridge.connected).toBe(true);
  });

  it('aborts the local request on cancel and cuts its answer', async () => {
    await pollingBridge();
    const closed = target.closed('k1');
    relay.send([request('k1', 'GET', '/hang/k1')]);
    await relay.until(() => relay.answers.get('k1')?.head !== undefined);
    relay.send([{ type: 'cancel', id: 'k1', reason: 'client disconnected' }]);
    await closed;
    expect((await relay.answer('k1')).cut).toBe(true);
  });

  it('answers with an error head when the local server is down', async () => {
    await pollingBridge({ target: 'http://127.0.0.1:1' });
    relay.send([request('dn', 'GET', '/api/tags')]);
    const answer = await relay.answer('dn');
    expect(answer.head).toEqual({ error: { code: 'target_unreachable', message: 'could not reach http://127.0.0.1:1: ECONNREFUSED' } });
    expect(answer.ended).toBe(true);
  });

  it('cuts the answer and reports target_failed when the local server dies mid-answer', async () => {
    await pollingBridge();
    relay.send([request('die', 'GET', '/die')]);
    const answer = await relay.answer('die');
    expect(answer.cut).toBe(true);
    expect(body(answer).toString()).toBe('partial\n');
    await relay.until(() => relay.heartbeatMessages.some((m) => m.type === 'error' && m.id === 'die' && m.code === 'target_failed'));
  });

  it('registers again, with the same client id, after a poll answered 404', async () => {
    const statuses: BridgeStatus[] = [];
    await pollingBridge({ onStatus: (status) => statuses.push(status) });
    relay.failNextPoll(404, { error: { code: 'unknown_bridge', message: 'no such bridge: register again' } });
    await relay.until(() => relay.registrations.length === 2);
    expect(relay.registrations[1].body.clientId).toBe(relay.registrations[0].body.clientId);
    expect(statuses.find((status) => status.state === 'retrying')?.reason).toMatch(/^the relay no longer knows this bridge/);
    relay.send([request('again', 'GET', '/json/3')]);
    expect((await relay.answer('again')).req.url).toBe('/api/bridge/respond/b2/again');
  });

  it('takes a relay that stops answering polls for gone, and starts over', async () => {
    const statuses: BridgeStatus[] = [];
    await pollingBridge({ pingTimeoutMs: 300, onStatus: (status) => statuses.push(status) });
    relay.silence();
    await relay.until(() => relay.registrations.length === 2, 5_000);
    // The fake answers polls after 500 ms; 300 ms of silence beyond that is the end.
    expect(statuses.find((status) => status.state === 'retrying')?.reason).toBe('no answer to a poll from the relay for 0.8 s');
  });

  it('explains a refused token, and keeps retrying', async () => {
    relay.failNextRegister(401, { error: { code: 'unauthorized', message: 'jwt expired' } });
    const statuses: BridgeStatus[] = [];
    const bridge = await pollingBridge({ onStatus: (status) => statuses.push(status) });
    expect(statuses.find((status) => status.state === 'retrying')?.reason).toBe('the relay refused the token: 401 unauthorized: jwt expired');
    expect(bridge.connected).toBe(true);
  });

  it('holds back polls while the local server is not taking a request body, heartbeating meanwhile', async () => {
    const bridge = await pollingBridge();
    // /hang never reads its request body: after the socket buffers, the bytes wait in the bridge.
    // A relay sends at most a window of one stream per poll answer: it feeds a window per poll,
    // more than the bridge may hold untaken.
    const chunk = Buffer.alloc(MAX_CHUNK_BYTES, 1);
    const window = () => Array.from({ length: 16 }, () => data('slow', chunk));
    relay.send([request('slow', 'POST', '/hang/slow', false), ...window()]);
    await relay.until(() => relay.answers.get('slow')?.head !== undefined);
    for (let round = 0; round < 12; round++) {
      await relay.until(() => relay.pollWaiting, 3000);
      relay.send(window());
    }
    const polls = relay.polls;
    const heartbeats = relay.heartbeats;
    await relay.until(() => relay.heartbeats >= heartbeats + 2);
    expect(relay.polls).toBe(polls);
    // The hold-back is bounded, so a cancel still gets through, and polls flow again.
    relay.send([{ type: 'cancel', id: 'slow' }]);
    await relay.until(() => bridge.stats.active === 0 && relay.polls > polls + 1);
    relay.send([request('after', 'GET', '/json/4')]);
    expect((await relay.answer('after')).head).toMatchObject({ status: 200 });
  });

  it('takes more than a window of one stream in a poll answer only from a relay that agreed to the larger window', async () => {
    const upload = Buffer.alloc(3 * 1024 * 1024, 7);
    const frames = (id: string) => [request(id, 'POST', `/echo/${id}`, false), ...Array.from({ length: upload.byteLength / MAX_CHUNK_BYTES }, () => data(id, upload.subarray(0, MAX_CHUNK_BYTES))), { type: 'end', id } as ControlMessage];

    // The relay of beforeEach said nothing of windows: three windows of one stream in one answer break flow control.
    await pollingBridge();
    relay.send(frames('flood'));
    await relay.until(() => relay.registrations.length >= 2, 5000);
    expect(relay.answers.get('flood')?.ended ?? false).toBe(false);
    await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
    await relay.close();

    relay = await startFakePollRelay({ pollTimeoutMs: 500, heartbeatIntervalMs: 100, agreesWindow: 4 * 1024 * 1024 });
    await pollingBridge();
    expect(relay.registrations[0].body.window).toBe(MAX_STREAM_WINDOW);
    relay.send(frames('agreed'));
    const answer = await relay.answer('agreed');
    expect(answer.head).toMatchObject({ status: 200 });
    expect(body(answer).equals(upload)).toBe(true);
    expect(relay.registrations).toHaveLength(1);
  });

  it('polls and answers through an HTTP CONNECT proxy, on kept-alive tunnels', async () => {
    const proxy = await startConnectProxy();
    try {
      const bridge = await pollingBridge({ proxyEnv: { httpProxy: proxy.url } });
      expect(bridge.proxy).toBe(proxy.url);
      for (const n of [5, 6, 7]) {
        relay.send([request(`px${n}`, 'GET', `/json/${n}`)]);
        expect(JSON.parse(body(await relay.answer(`px${n}`)).toString())).toEqual({ n, method: 'GET' });
      }
      expect(proxy.connects.length).toBeGreaterThan(0);
      expect(new Set(proxy.connects)).toEqual(new Set([new URL(relay.url).host]));
      // Polls follow each other on warm connections rather than one CONNECT each.
      expect(proxy.connects.length).toBeLessThan(relay.polls + 3);
    } finally {
      proxy.close();
    }
  });
});
