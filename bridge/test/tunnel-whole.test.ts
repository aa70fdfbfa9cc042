/**
 * Whole frames at the bridge (protocol/src/tunnel-whole.ts): what it offers, what it sends to a
 * relay that took the offer and to one that did not, and what it does with a whole request — a
 * good one, one past the limit, one it never offered to take, one cancelled. Relays scripted by
 * hand (fake-relay.ts, fake-poll-relay.ts), a real local HTTP server.
 */
import {
  encodeWhole,
  FRAME_WHOLE,
  MAX_INLINE_BODY_BYTES,
  WHOLE_FRAMES_HEADER,
  type ControlMessage,
  type WholeHead,
} from '@ctll/protocol';
import { startBridge, type Bridge, type BridgeOptions } from '../src';
import { startFakePollRelay, type FakePollRelay } from './fake-poll-relay';
import { startFakeRelay, type FakeRelay, type Peer } from './fake-relay';
import { eventually, startTarget, type Target } from './helpers';

let target: Target;
const bridges: Bridge[] = [];
const relays: Array<FakeRelay | FakePollRelay> = [];

beforeAll(async () => {
  target = await startTarget();
});

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
  await Promise.all(relays.splice(0).map((relay) => relay.close()));
});

afterAll(() => target.close());

function bridgeTo(server: string, options: Partial<BridgeOptions> = {}): Bridge {
  const bridge = startBridge({ server, token: 'tok-123', target: target.url, backoff: { stepsMs: [30, 60], jitter: 0 }, fallback: false, ...options });
  bridges.push(bridge);
  return bridge;
}

async function wsPeer(takesWhole: boolean, options: Partial<BridgeOptions> = {}): Promise<Peer> {
  const relay = await startFakeRelay(undefined, { takesWhole });
  relays.push(relay);
  const bridge = bridgeTo(relay.url, options);
  const peer = await relay.nextPeer();
  await bridge.waitConnected();
  return peer;
}

const request = (id: string, method: string, path: string, body = Buffer.alloc(0)): WholeHead => ({
  type: 'http_request',
  id,
  method,
  path,
  headers: body.byteLength > 0 ? { 'content-length': String(body.byteLength) } : {},
  end: true,
});

const wholeOf = (head: WholeHead, body = Buffer.alloc(0)) => encodeWhole(head, body)!;

const ofStream = (id: string, type?: ControlMessage['type']) => (message: ControlMessage) =>
  'id' in message && message.id === id && (type === undefined || message.type === type);

/** The stream's answer body, whichever form it came in. */
function answerBody(peer: Peer, id: string): string {
  const whole = peer.wholes.find((frame) => frame.head.id === id);
  return whole ? whole.body.toString() : Buffer.concat(peer.data.get(id) ?? []).toString();
}

describe('WebSocket', () => {
  it('offers whole frames on its upgrade, and to a relay that did not take the offer sends a short answer as head, data and end', async () => {
    const peer = await wsPeer(false);
    expect(peer.request.headers[WHOLE_FRAMES_HEADER]).toBe('1');
    peer.send({ type: 'http_request', id: 'j1', method: 'GET', path: '/json/1', headers: {}, end: true });
    await peer.waitFor(ofStream('j1', 'end'));
    expect(peer.controls.filter(ofStream('j1')).map((message) => message.type)).toEqual(['http_response', 'end']);
    expect(JSON.parse(answerBody(peer, 'j1'))).toEqual({ n: 1, method: 'GET' });
    expect(peer.wholes).toEqual([]);
  });

  it('to a relay that took the offer sends a short answer as one whole frame, while a long one and one without a length still stream', async () => {
    const peer = await wsPeer(true);
    peer.ws.send(wholeOf(request('j2', 'GET', '/json/2')), { binary: true });
    peer.send({ type: 'http_request', id: 'long', method: 'GET', path: `/bytes/${MAX_INLINE_BODY_BYTES + 1}`, headers: {}, end: true });
    peer.send({ type: 'http_request', id: 'gen', method: 'GET', path: '/stream/gen', headers: {}, end: true });
    await eventually(() => peer.wholes.some((frame) => frame.head.id === 'j2'));
    await peer.waitFor(ofStream('long', 'end'));
    await peer.waitFor(ofStream('gen', 'end'));

    const whole = peer.wholes.find((frame) => frame.head.id === 'j2')!;
    expect(whole.head).toMatchObject({ type: 'http_response', status: 200, end: true });
    expect(JSON.parse(whole.body.toString())).toEqual({ n: 2, method: 'GET' });
    expect(peer.controls.filter(ofStream('j2'))).toEqual([]);
    expect(peer.controls.filter(ofStream('long')).map((message) => message.type)).toEqual(['http_response', 'end']);
    expect(peer.bytes('long')).toBe(MAX_INLINE_BODY_BYTES + 1);
    expect(peer.controls.filter(ofStream('gen')).map((message) => message.type)).toEqual(['http_response', 'end']);
    expect(peer.wholes.map((frame) => frame.head.id)).toEqual(['j2']);
  });

  it('plays a whole request against the local server with its body', async () => {
    const peer = await wsPeer(true);
    const body = Buffer.from('{"prompt":"hello over one frame"}');
    peer.ws.send(wholeOf(request('e1', 'POST', '/echo', body), body), { binary: true });
    await peer.waitFor(ofStream('e1', 'end'));
    expect(answerBody(peer, 'e1')).toBe(body.toString());
  });

  it('refuses a whole request past the inline limit with bad_message naming its stream, and serves the next request on the tunnel', async () => {
    const peer = await wsPeer(true);
    const head = Buffer.from(JSON.stringify(request('big', 'POST', '/echo')));
    const oversized = Buffer.alloc(5 + head.byteLength + MAX_INLINE_BODY_BYTES + 1, 0x61);
    oversized[0] = FRAME_WHOLE;
    oversized.writeUInt32BE(head.byteLength, 1);
    head.copy(oversized, 5);
    peer.ws.send(oversized, { binary: true });
    const refusal = await peer.waitFor(ofStream('big', 'error'));
    expect(refusal).toMatchObject({ code: 'bad_message', message: expect.stringContaining(`${MAX_INLINE_BODY_BYTES}`) });

    peer.ws.send(wholeOf(request('after', 'GET', '/json/7')), { binary: true });
    await eventually(() => peer.wholes.some((frame) => frame.head.id === 'after'));
    expect(JSON.parse(answerBody(peer, 'after'))).toEqual({ n: 7, method: 'GET' });
    expect(peer.controls.filter(ofStream('big')).map((message) => message.type)).toEqual(['error']);
  });

  it('with whole frames off it offers none, and refuses a whole request from the relay without serving it', async () => {
    const peer = await wsPeer(true, { wholeFrames: false });
    expect(peer.request.headers[WHOLE_FRAMES_HEADER]).toBeUndefined();
    peer.ws.send(wholeOf(request('nope', 'GET', '/json/3')), { binary: true });
    const refusal = await peer.waitFor((message) => message.type === 'error' && /did not offer/.test(message.message));
    expect(refusal).toMatchObject({ code: 'bad_message' });
    peer.send({ type: 'http_request', id: 'plain', method: 'GET', path: '/json/4', headers: {}, end: true });
    await peer.waitFor(ofStream('plain', 'end'));
    expect(peer.controls.filter(ofStream('nope'))).toEqual([]);
    expect(peer.wholes).toEqual([]);
  });

  it('aborts the local request when a request that arrived whole is cancelled', async () => {
    const peer = await wsPeer(true);
    peer.ws.send(wholeOf(request('h1', 'GET', '/hang/whole-cancel')), { binary: true });
    await peer.waitFor(ofStream('h1', 'http_response'));
    peer.send({ type: 'cancel', id: 'h1', reason: 'client disconnected' });
    await target.closed('whole-cancel');
  });
});

describe('long-poll', () => {
  async function pollRelay(takesWhole: boolean): Promise<FakePollRelay> {
    const relay = await startFakePollRelay({ pollTimeoutMs: 300, takesWhole });
    relays.push(relay);
    const bridge = bridgeTo(relay.url, { transport: 'poll' });
    await bridge.waitConnected();
    return relay;
  }

  it('offers whole frames at registration; a relay that took the offer gets a short answer as one whole POST and its whole requests are served', async () => {
    const relay = await pollRelay(true);
    expect(relay.registrations[0].body.whole).toBe(true);
    const body = Buffer.from('{"ping":"pong"}');
    relay.send([wholeOf(request('p1', 'GET', '/json/5')), wholeOf(request('p2', 'POST', '/echo', body), body)]);

    const short = await relay.answer('p1');
    expect(short).toMatchObject({ whole: true, head: { status: 200 } });
    expect(JSON.parse(Buffer.concat(short.chunks.map((chunk) => chunk.bytes)).toString())).toEqual({ n: 5, method: 'GET' });
    // /echo streams its answer with no declared length: it goes the streamed way.
    const echoed = await relay.answer('p2');
    expect(echoed.whole).toBe(false);
    expect(Buffer.concat(echoed.chunks.map((chunk) => chunk.bytes)).toString()).toBe(body.toString());
  });

  it('to a relay that did not take the offer, a short answer is a streamed POST as before', async () => {
    const relay = await pollRelay(false);
    relay.send([{ type: 'http_request', id: 'o1', method: 'GET', path: '/json/6', headers: {}, end: true }]);
    const answer = await relay.answer('o1');
    expect(answer).toMatchObject({ whole: false, head: { status: 200 } });
    expect(JSON.parse(Buffer.concat(answer.chunks.map((chunk) => chunk.bytes)).toString())).toEqual({ n: 6, method: 'GET' });
  });
});
