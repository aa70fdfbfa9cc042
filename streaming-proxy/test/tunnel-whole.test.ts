/**
 * Whole frames on the desktop's tunnel (protocol/src/tunnel-whole.ts), at the proxy: a bridge that
 * offers them gets a short request as one frame and may answer as one; an old bridge (no offer)
 * never sees one and may not send one; a broken whole frame fails only its own stream. Both
 * transports. The proxy server is the real one; api-backend's frame link, the WebSocket desktop
 * and the polling desktop are played by hand.
 */
import {
  decodeFrame,
  encodeControl,
  encodeData,
  encodeLinkMessage,
  encodeWhole,
  FRAME_WHOLE,
  isWholeFrame,
  MAX_INLINE_BODY_BYTES,
  POLL_BATCH_CONTENT_TYPE,
  POLL_WHOLE_CONTENT_TYPE,
  PROTOCOL_VERSION,
  PROXY_SECRET_HEADER,
  recordHeader,
  TunnelErrorCode,
  WHOLE_FRAMES_HEADER,
  type Frame,
  type HttpRequestMessage,
  type PollRegistration,
  type WholeHead,
} from '@ctll/protocol';
import { postToProxy, SECRET, startProxy, type TestProxy } from './helpers/proxy';
import { nextOf, openRawLink, type LinkEvent, type RawLink } from './helpers/raw-link';
import { waitUntil } from './helpers/wait';
import { openFrameDesktop, pollAnswerFrames, shortAnswerHead, type FrameDesktop } from '../../tests/helpers/frame-desktop';

let proxy: TestProxy;
beforeEach(async () => {
  proxy = await startProxy({ BRIDGE_POLL_TIMEOUT_MS: '300', BRIDGE_GRACE_MS: '30000' });
});
afterEach(() => proxy.close());

function wsDesktop(offer: boolean): Promise<FrameDesktop> {
  return openFrameDesktop(`${proxy.url.replace('http', 'ws')}/ws/tunnel`, { [PROXY_SECRET_HEADER]: SECRET, ...(offer ? { [WHOLE_FRAMES_HEADER]: '1' } : {}) });
}

/** The next frame that is not a ping, target or the like: what a stream is made of. */
async function nextStreamFrame(desktop: { next(): Promise<Frame> }): Promise<Frame> {
  for (;;) {
    const frame = await desktop.next();
    if (frame.kind !== 'control' || ['http_request', 'end', 'cancel', 'error'].includes(frame.message.type)) return frame;
  }
}

function kindOf(frame: Frame): string {
  return frame.kind === 'control' ? frame.message.type : frame.kind;
}

/** api-backend's frame link, taking whole frames, once the proxy says a desktop is there. */
async function frameLink(): Promise<RawLink> {
  const link = await openRawLink(proxy);
  link.ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION, whole: true }));
  for (;;) {
    const state = await nextOf(link, 'desktop');
    if (state.connected) return link;
  }
}

/** The next event on the link that belongs to a stream. */
async function nextStreamEvent(link: RawLink): Promise<LinkEvent> {
  for (;;) {
    const event = await link.nextEvent();
    if (event.kind !== 'control' || (event.message.type !== 'hello' && event.message.type !== 'desktop')) return event;
  }
}

const post = (id: string, body: Buffer): HttpRequestMessage => ({
  type: 'http_request',
  id,
  method: 'POST',
  path: '/api/show',
  headers: { 'content-type': 'application/json', 'content-length': String(body.byteLength) },
  end: true,
});

const sendWholeRequest = (link: RawLink, id: string, body: Buffer) => link.ws.send(encodeWhole(post(id, body), body)!, { binary: true });

const answerHead = shortAnswerHead;

/** A whole frame whose body is one byte past the inline limit (encodeWhole refuses to make one). */
function oversizedWhole(head: WholeHead): Buffer {
  const json = Buffer.from(JSON.stringify(head));
  const frame = Buffer.alloc(5 + json.byteLength + MAX_INLINE_BODY_BYTES + 1, 0x78);
  frame[0] = FRAME_WHOLE;
  frame.writeUInt32BE(json.byteLength, 1);
  json.copy(frame, 5);
  return frame;
}

describe('WebSocket tunnel', () => {
  it('an old bridge (no offer on its upgrade) is not told of whole frames and gets a short request as head, data and end', async () => {
    const desktop = await wsDesktop(false);
    expect(desktop.answered).toBeUndefined();
    const link = await frameLink();
    const body = Buffer.from('{"model":"m"}');
    sendWholeRequest(link, 'old1', body);
    const kinds = [kindOf(await nextStreamFrame(desktop)), kindOf(await nextStreamFrame(desktop)), kindOf(await nextStreamFrame(desktop))];
    expect(kinds).toEqual(['http_request', 'data', 'end']);
    link.ws.close();
    desktop.ws.close();
  });

  it('a bridge that offered whole frames is told so, gets a short request as one whole frame, and its whole answer reaches api-backend as one', async () => {
    const desktop = await wsDesktop(true);
    expect(desktop.answered).toBe('1');
    const link = await frameLink();
    const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'p'.repeat(500) }));
    sendWholeRequest(link, 'w1', body);

    const request = await nextStreamFrame(desktop);
    if (request.kind !== 'whole') throw new Error(`expected a whole frame, got ${kindOf(request)}`);
    expect(request.whole.head).toMatchObject({ type: 'http_request', method: 'POST', path: '/api/show', end: true });
    expect(request.whole.body.equals(body)).toBe(true);

    const answer = Buffer.from('{"details":"short"}');
    desktop.ws.send(encodeWhole(answerHead(request.whole.head.id, answer), answer)!, { binary: true });
    const event = await nextStreamEvent(link);
    expect(event).toMatchObject({ kind: 'whole', frame: { head: { type: 'http_response', id: 'w1', status: 200 } } });
    if (event.kind === 'whole') expect(event.frame.body.toString()).toBe('{"details":"short"}');
    // Counted as the streamed form is: the audit's byte counts do not depend on the form.
    const [info] = proxy.hub.info();
    expect(info).toMatchObject({ requests: 1, bytesToDesktop: body.byteLength, bytesFromDesktop: answer.byteLength });
    link.ws.close();
    desktop.ws.close();
  });

  it('a whole frame from a bridge that did not offer them is refused with bad_message, and its stream fails at once', async () => {
    const desktop = await wsDesktop(false);
    const link = await frameLink();
    sendWholeRequest(link, 'r1', Buffer.from('{}'));
    const request = await nextStreamFrame(desktop);
    if (request.kind !== 'control' || request.message.type !== 'http_request') throw new Error('expected the request head');
    const answer = Buffer.from('{}');
    desktop.ws.send(encodeWhole(answerHead(request.message.id, answer), answer)!, { binary: true });
    let refusal = await nextStreamFrame(desktop);
    while (refusal.kind !== 'control' || refusal.message.type !== 'error') refusal = await nextStreamFrame(desktop);
    expect(refusal.message).toMatchObject({ code: TunnelErrorCode.BadMessage, message: expect.stringContaining('did not offer') });
    expect(await nextStreamEvent(link)).toMatchObject({ kind: 'whole', frame: { head: { id: 'r1', status: 502 } } });
    link.ws.close();
    desktop.ws.close();
  });

  it('a whole answer past the inline limit is refused with a clear error, fails only its own stream, and another stream is answered', async () => {
    const desktop = await wsDesktop(true);
    const link = await frameLink();
    sendWholeRequest(link, 'big', Buffer.from('{"a":1}'));
    sendWholeRequest(link, 'fine', Buffer.from('{"b":2}'));
    const first = await nextStreamFrame(desktop);
    const second = await nextStreamFrame(desktop);
    if (first.kind !== 'whole' || second.kind !== 'whole') throw new Error('expected two whole requests');

    desktop.ws.send(oversizedWhole(answerHead(first.whole.head.id, Buffer.alloc(MAX_INLINE_BODY_BYTES + 1))), { binary: true });
    const refusal = await nextStreamFrame(desktop);
    expect(refusal).toMatchObject({ kind: 'control', message: { type: 'error', code: TunnelErrorCode.BadMessage, message: expect.stringContaining(`${MAX_INLINE_BODY_BYTES}`) } });
    // The caller of that stream hears of it now (a 502 the proxy makes), not after its timeout.
    const failed = await nextStreamEvent(link);
    expect(failed).toMatchObject({ kind: 'whole', frame: { head: { id: 'big', status: 502 } } });
    if (failed.kind === 'whole') expect(failed.frame.body.toString()).toContain('malformed answer');

    const answer = Buffer.from('{"ok":true}');
    desktop.ws.send(encodeWhole(answerHead(second.whole.head.id, answer), answer)!, { binary: true });
    expect(await nextStreamEvent(link)).toMatchObject({ kind: 'whole', frame: { head: { id: 'fine', status: 200 } } });
    expect(proxy.hub.count('ws')).toBe(1);
    link.ws.close();
    desktop.ws.close();
  });

  it('a cancel of a request that went whole reaches the bridge, and a whole answer crossing it is dropped', async () => {
    const desktop = await wsDesktop(true);
    const link = await frameLink();
    sendWholeRequest(link, 'c1', Buffer.from('{}'));
    const request = await nextStreamFrame(desktop);
    if (request.kind !== 'whole') throw new Error('expected a whole request');
    link.ws.send(encodeLinkMessage({ type: 'cancel', id: 'c1', reason: 'client disconnected' }));
    expect(await nextStreamFrame(desktop)).toMatchObject({ kind: 'control', message: { type: 'cancel', id: request.whole.head.id } });
    const answer = Buffer.from('{}');
    desktop.ws.send(encodeWhole(answerHead(request.whole.head.id, answer), answer)!, { binary: true });
    // The next thing on the link is the answer to a later request: nothing came of the cancelled one.
    sendWholeRequest(link, 'c2', Buffer.from('{}'));
    const later = await nextStreamFrame(desktop);
    if (later.kind !== 'whole') throw new Error('expected a whole request');
    desktop.ws.send(encodeWhole(answerHead(later.whole.head.id, answer), answer)!, { binary: true });
    expect(await nextStreamEvent(link)).toMatchObject({ kind: 'whole', frame: { head: { id: 'c2' } } });
    link.ws.close();
    desktop.ws.close();
  });
});

describe('long-poll tunnel', () => {
  async function register(whole: boolean, answers = false): Promise<PollRegistration> {
    const answer = await postToProxy(proxy, '/bridge/register', {}, JSON.stringify({ ...(whole ? { whole: true } : {}), ...(answers ? { answers: true } : {}) }));
    expect(answer.status).toBe(201);
    return JSON.parse(answer.body) as PollRegistration;
  }

  async function pollFrames(bridgeId: string): Promise<Frame[]> {
    const res = await fetch(`${proxy.url}/bridge/poll/${bridgeId}`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
    return pollAnswerFrames(Buffer.from(await res.arrayBuffer()));
  }

  function respondWhole(bridgeId: string, requestId: string, frame: Buffer, contentType = POLL_WHOLE_CONTENT_TYPE) {
    return fetch(`${proxy.url}/bridge/respond/${bridgeId}/${requestId}`, {
      method: 'POST',
      headers: { [PROXY_SECRET_HEADER]: SECRET, 'content-type': contentType },
      body: frame,
    }).then(async (res) => ({ status: res.status, json: (await res.json()) as unknown }));
  }

  it('an old polling bridge is not told of whole frames, gets head, data and end records, and its whole answer POST is refused', async () => {
    const registration = await register(false);
    expect(registration.whole).toBeUndefined();
    const link = await frameLink();
    sendWholeRequest(link, 'p1', Buffer.from('{"x":1}'));
    const frames = await pollFrames(registration.bridgeId);
    expect(frames.map(kindOf)).toEqual(['http_request', 'data', 'end']);
    const head = frames[0];
    if (head.kind !== 'control' || head.message.type !== 'http_request') throw new Error('expected the request head');

    const answer = Buffer.from('{}');
    const refused = await respondWhole(registration.bridgeId, head.message.id, encodeWhole(answerHead(head.message.id, answer), answer)!);
    expect(refused).toMatchObject({ status: 400, json: { error: { code: 'malformed_answer', message: expect.stringContaining('did not register') } } });
    expect(await nextStreamEvent(link)).toMatchObject({ kind: 'whole', frame: { head: { id: 'p1', status: 502 } } });
    link.ws.close();
  });

  it('a polling bridge that registered for whole frames gets a short request as one record and POSTs its answer as one whole frame', async () => {
    const registration = await register(true);
    expect(registration.whole).toBe(true);
    const link = await frameLink();
    const body = Buffer.from('{"model":"m"}');
    sendWholeRequest(link, 'p2', body);
    const frames = await pollFrames(registration.bridgeId);
    expect(frames.map(kindOf)).toEqual(['whole']);
    const request = frames[0];
    if (request.kind !== 'whole') throw new Error('unreachable');
    expect(request.whole.body.equals(body)).toBe(true);

    const answer = Buffer.from('{"details":{}}');
    const posted = await respondWhole(registration.bridgeId, request.whole.head.id, encodeWhole(answerHead(request.whole.head.id, answer), answer)!);
    expect(posted).toEqual({ status: 200, json: { ok: true } });
    const event = await nextStreamEvent(link);
    expect(event).toMatchObject({ kind: 'whole', frame: { head: { id: 'p2', status: 200 } } });
    if (event.kind === 'whole') expect(event.frame.body.equals(answer)).toBe(true);
    link.ws.close();
  });

  it('a whole answer POST past the limit, or for another stream, is refused 400 and fails only its own stream', async () => {
    const registration = await register(true);
    const link = await frameLink();
    sendWholeRequest(link, 'q1', Buffer.from('{}'));
    sendWholeRequest(link, 'q2', Buffer.from('{}'));
    sendWholeRequest(link, 'q3', Buffer.from('{}'));
    const frames: Frame[] = [];
    while (frames.length < 3) frames.push(...(await pollFrames(registration.bridgeId)));
    const ids = frames.map((frame) => (frame.kind === 'whole' ? frame.whole.head.id : ''));

    const big = await respondWhole(registration.bridgeId, ids[0], oversizedWhole(answerHead(ids[0], Buffer.alloc(0))));
    expect(big).toMatchObject({ status: 400, json: { error: { code: 'malformed_answer', message: expect.stringContaining(`${MAX_INLINE_BODY_BYTES}`) } } });
    const answer = Buffer.from('{}');
    const misdirected = await respondWhole(registration.bridgeId, ids[1], encodeWhole(answerHead(ids[2], answer), answer)!);
    expect(misdirected).toMatchObject({ status: 400, json: { error: { code: 'malformed_answer' } } });
    const fine = await respondWhole(registration.bridgeId, ids[2], encodeWhole(answerHead(ids[2], answer), answer)!);
    expect(fine.status).toBe(200);

    const events = [await nextStreamEvent(link), await nextStreamEvent(link), await nextStreamEvent(link)];
    const statuses = Object.fromEntries(events.map((event) => (event.kind === 'whole' ? [event.frame.head.id, event.frame.head.type === 'http_response' ? event.frame.head.status : 0] : ['?', 0])));
    expect(statuses).toEqual({ q1: 502, q2: 502, q3: 200 });
    link.ws.close();
  });

  /** Requests `ids` sent through the link, all collected by polls; their stream ids at the bridge, in order. */
  async function polledRequests(link: RawLink, bridgeId: string, ids: string[]): Promise<string[]> {
    for (const id of ids) sendWholeRequest(link, id, Buffer.from('{}'));
    const frames: Frame[] = [];
    while (frames.length < ids.length) frames.push(...(await pollFrames(bridgeId)));
    return frames.map((frame) => (frame.kind === 'whole' ? frame.whole.head.id : ''));
  }

  async function postBatch(bridgeId: string, records: Buffer[]): Promise<{ status: number; body: string }> {
    const res = await fetch(`${proxy.url}/bridge/answers/${bridgeId}`, {
      method: 'POST',
      headers: { [PROXY_SECRET_HEADER]: SECRET, 'content-type': POLL_BATCH_CONTENT_TYPE },
      body: Buffer.concat(records.flatMap((record) => [recordHeader(record.byteLength), record])),
    });
    return { status: res.status, body: await res.text() };
  }

  const wholeAnswer = (id: string, text: string) => encodeWhole(answerHead(id, Buffer.from(text)), Buffer.from(text))!;

  it('tells a bridge that offered whole frames and batches that it takes batches, and no bridge that offered batches alone', async () => {
    expect((await register(true, true)).answers).toBe(true);
    expect((await register(false, true)).answers).toBeUndefined();
    expect((await register(true)).answers).toBeUndefined();
  });

  it('hands every answer of a batch to its own web client, and names the one whose request no longer waits', async () => {
    const registration = await register(true, true);
    const link = await frameLink();
    const ids = await polledRequests(link, registration.bridgeId, ['b1', 'b2']);
    const answered = await postBatch(registration.bridgeId, [wholeAnswer(ids[0], '"one"'), wholeAnswer('nobody', '"lost"'), wholeAnswer(ids[1], '"two"')]);
    expect(answered.status).toBe(200);
    expect(JSON.parse(answered.body)).toEqual({ refused: [{ id: 'nobody', code: 'unknown_request', message: expect.any(String) }] });
    const bodies: Record<string, string> = {};
    for (let i = 0; i < 2; i++) {
      const event = await nextStreamEvent(link);
      if (event.kind !== 'whole' || event.frame.head.type !== 'http_response') throw new Error('expected a whole answer');
      expect(event.frame.head.status).toBe(200);
      bodies[event.frame.head.id] = event.frame.body.toString();
    }
    expect(bodies).toEqual({ b1: '"one"', b2: '"two"' });
    link.ws.close();
  });

  it('fails only the stream whose answer in a batch is malformed; the others of the batch are taken', async () => {
    const registration = await register(true, true);
    const link = await frameLink();
    const ids = await polledRequests(link, registration.bridgeId, ['m1', 'm2']);
    const notAnAnswer = encodeWhole({ ...post(ids[0], Buffer.alloc(0)), end: true }, Buffer.alloc(0))!;
    const answered = await postBatch(registration.bridgeId, [notAnAnswer, wholeAnswer(ids[1], '{}')]);
    expect(answered.status).toBe(200);
    expect(JSON.parse(answered.body)).toMatchObject({ refused: [{ id: ids[0], code: 'malformed_answer' }] });
    const events = [await nextStreamEvent(link), await nextStreamEvent(link)];
    const statuses = Object.fromEntries(events.map((event) => (event.kind === 'whole' && event.frame.head.type === 'http_response' ? [event.frame.head.id, event.frame.head.status] : ['?', 0])));
    expect(statuses).toEqual({ m1: 502, m2: 200 });
    link.ws.close();
  });

  it('refuses a batch from a bridge that never offered batches, taking none of it', async () => {
    const registration = await register(true);
    const link = await frameLink();
    const ids = await polledRequests(link, registration.bridgeId, ['n1']);
    const refused = await postBatch(registration.bridgeId, [wholeAnswer(ids[0], '{}'), wholeAnswer(ids[0], '{}')]);
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'malformed_answer', message: expect.stringContaining('did not register') } });
    // The request still waits for its answer, which a single POST gives.
    const single = await respondWhole(registration.bridgeId, ids[0], wholeAnswer(ids[0], '"late"'));
    expect(single.status).toBe(200);
    const event = await nextStreamEvent(link);
    expect(event).toMatchObject({ kind: 'whole', frame: { head: { id: 'n1', status: 200 } } });
    link.ws.close();
  });

  it('a whole request withdrawn by its cancel before any poll took it never reaches the bridge', async () => {
    const registration = await register(true);
    const link = await frameLink();
    sendWholeRequest(link, 'gone', Buffer.from('{}'));
    link.ws.send(encodeLinkMessage({ type: 'cancel', id: 'gone', reason: 'client disconnected' }));
    // A request after them as the marker: once it is in, the cancel was handled before any poll.
    link.ws.send(encodeControl({ type: 'http_request', id: 'marker', method: 'GET', path: '/api/tags', headers: {}, end: true }));
    await waitUntil(() => proxy.stats.requests === 2, 'both requests reached the proxy');
    const frames = await pollFrames(registration.bridgeId);
    expect(frames.map(kindOf)).toEqual(['http_request']);
    link.ws.close();
  });
});

// The data frame codec is the streaming form's; it stays valid next to whole frames on one socket.
it('keeps data frames and whole frames apart on the same socket by their kind byte', () => {
  const data = encodeData('s1', Buffer.from('x'));
  const body = Buffer.from('y');
  const whole = encodeWhole(answerHead('s1', body), body)!;
  expect(isWholeFrame(data)).toBe(false);
  expect(isWholeFrame(whole)).toBe(true);
  expect(decodeFrame(whole)).toMatchObject({ ok: true, value: { kind: 'whole' } });
});
