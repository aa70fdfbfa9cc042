/**
 * A polling bridge's calls carried on api-backend's frame link (upstream/bridge-call.ts), played by
 * hand: a raw WebSocket stands in for api-backend, the proxy server is the real one. A call marked
 * with BRIDGE_CALL_HEADER is answered by the proxy's polling routes; one without the mark goes to
 * the desktop; credit and cancels hold as on any stream of the link.
 */
import {
  BRIDGE_CALL_HEADER,
  encodeData,
  encodeLinkMessage,
  encodeResponseHead,
  encodeWhole,
  FLOW_CONTROL_CLOSE_CODE,
  INITIAL_WINDOW,
  MAX_CHUNK_BYTES,
  POLL_BATCH_CONTENT_TYPE,
  PROTOCOL_VERSION,
  RecordReader,
  decodeFrame,
} from '@ctll/protocol';
import { startProxy, type TestProxy } from './helpers/proxy';
import { openRawLink, type LinkEvent, type RawLink } from './helpers/raw-link';

interface Answer {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

const CALL = { [BRIDGE_CALL_HEADER]: '1' };

/** Reads the link until each of the streams `ids` has its whole answer (one whole frame, or head, data and end). */
async function answersOf(link: RawLink, ...ids: string[]): Promise<Answer[]> {
  const heads = new Map<string, Answer>();
  const parts = new Map<string, Buffer[]>(ids.map((id) => [id, []]));
  const done = new Map<string, Answer>();
  while (done.size < ids.length) {
    const event = await link.nextEvent();
    if (event.kind === 'whole' && parts.has(event.frame.head.id) && event.frame.head.type === 'http_response') {
      done.set(event.frame.head.id, { status: event.frame.head.status, headers: event.frame.head.headers, body: Buffer.from(event.frame.body) });
    }
    if (event.kind === 'data') parts.get(event.id)?.push(event.payload);
    if (event.kind !== 'control') continue;
    const message = event.message;
    if (message.type === 'http_response' && parts.has(message.id)) {
      heads.set(message.id, { status: message.status, headers: message.headers, body: Buffer.alloc(0) });
      if (message.end) done.set(message.id, heads.get(message.id)!);
    }
    const head = message.type === 'end' ? heads.get(message.id) : undefined;
    if (message.type === 'end' && head) done.set(message.id, { ...head, body: Buffer.concat(parts.get(message.id)!) });
    if (message.type === 'error' && message.id !== undefined && parts.has(message.id)) throw new Error(`stream ${message.id} failed: ${message.code} ${message.message}`);
  }
  return ids.map((id) => done.get(id)!);
}

async function answerOf(link: RawLink, id: string): Promise<Answer> {
  return (await answersOf(link, id))[0];
}

/** A bridge call with a short JSON body, sent as one whole frame (as api-backend sends it). */
function callWhole(link: RawLink, id: string, path: string, body: unknown): void {
  const bytes = Buffer.from(JSON.stringify(body));
  const head = { type: 'http_request' as const, id, method: 'POST', path, headers: { ...CALL, 'content-type': 'application/json' }, end: true as const };
  link.ws.send(encodeWhole(head, bytes)!, { binary: true });
}

function poll(link: RawLink, id: string, bridgeId: string): void {
  link.ws.send(encodeLinkMessage({ type: 'http_request', id, method: 'GET', path: `/bridge/poll/${bridgeId}`, headers: CALL, end: true }));
}

async function register(link: RawLink): Promise<string> {
  callWhole(link, 'reg', '/bridge/register', { version: 'test' });
  const answer = await answerOf(link, 'reg');
  expect(answer.status).toBe(201);
  return (JSON.parse(answer.body.toString()) as { bridgeId: string }).bridgeId;
}

/** The control messages a poll answer's batch holds. */
function batchMessages(body: Buffer) {
  const records = new RecordReader().push(body);
  if (!records.ok) throw new Error(records.error);
  return records.value.map((record) => {
    const frame = decodeFrame(record);
    if (!frame.ok || frame.value.kind !== 'control') throw new Error('expected control frames only');
    return frame.value.message;
  });
}

/**
 * A web client's request `web` that a registered polling bridge answers with a streamed respond
 * call `call`: the head record is sent, the body is the test's to send. Returns the head record.
 */
async function startStreamedAnswer(web: string, call: string): Promise<Buffer> {
  const bridgeId = await register(link);
  link.ws.send(encodeLinkMessage({ type: 'http_request', id: web, method: 'GET', path: '/api/pull', headers: {}, end: true }));
  poll(link, `poll-${web}`, bridgeId);
  const [request] = batchMessages((await answerOf(link, `poll-${web}`)).body);
  if (request.type !== 'http_request') throw new Error('unreachable');
  const headRecord = encodeResponseHead({ status: 200, headers: {} });
  link.ws.send(encodeLinkMessage({ type: 'http_request', id: call, method: 'POST', path: `/bridge/respond/${bridgeId}/${request.id}`, headers: CALL, end: false }));
  link.ws.send(encodeData(call, headRecord), { binary: true });
  return headRecord;
}

let proxy: TestProxy;
let link: RawLink;
beforeEach(async () => {
  proxy = await startProxy({ POLL_TIMEOUT_MS: '5000' });
  link = await openRawLink(proxy);
  link.ws.send(encodeLinkMessage({ type: 'hello', version: PROTOCOL_VERSION, whole: true }));
});
afterEach(async () => {
  link.ws.close();
  await proxy.close();
});

it('says in its hello that it answers bridge calls on the link', async () => {
  const other = await openRawLink(proxy);
  expect(await other.next()).toMatchObject({ type: 'hello', bridgeCalls: true });
  other.ws.close();
});

it('registers a polling bridge from a call on the link, and hands that bridge a relayed request on its next poll', async () => {
  const bridgeId = await register(link);
  expect(bridgeId).toMatch(/^p[0-9a-f]{24}$/);
  link.ws.send(encodeLinkMessage({ type: 'http_request', id: 'web1', method: 'GET', path: '/api/tags', headers: {}, end: true }));
  poll(link, 'poll1', bridgeId);
  const answer = await answerOf(link, 'poll1');
  expect(answer.status).toBe(200);
  expect(answer.headers['content-type']).toBe(POLL_BATCH_CONTENT_TYPE);
  const [request] = batchMessages(answer.body);
  expect(request).toMatchObject({ type: 'http_request', method: 'GET', path: '/api/tags' });

  // The answer comes back as a respond call, streamed: a head record, then the body.
  if (request.type !== 'http_request') throw new Error('unreachable');
  const headRecord = encodeResponseHead({ status: 200, headers: { 'content-type': 'application/json' } });
  const respond = 'resp1';
  link.ws.send(encodeLinkMessage({ type: 'http_request', id: respond, method: 'POST', path: `/bridge/respond/${bridgeId}/${request.id}`, headers: CALL, end: false }));
  link.ws.send(encodeData(respond, Buffer.concat([headRecord, Buffer.from('{"models":[]}')])), { binary: true });
  link.ws.send(encodeLinkMessage({ type: 'end', id: respond }));
  const [relayed, respondAnswer] = await answersOf(link, 'web1', respond);
  expect(relayed.status).toBe(200);
  expect(relayed.body.toString()).toBe('{"models":[]}');
  expect(respondAnswer.status).toBe(200);
});

it('sends a request without the mark to the desktop, never to the polling routes', async () => {
  // No desktop and no zrok share: a request for /bridge/register that is not a bridge call is the desktop's, which is offline.
  link.ws.send(
    encodeWhole({ type: 'http_request', id: 'plain', method: 'POST', path: '/bridge/register', headers: { 'content-type': 'application/json' }, end: true }, Buffer.from('{}'))!,
    { binary: true },
  );
  const plain = await answerOf(link, 'plain');
  expect(plain.status).toBe(503);
  expect(JSON.parse(plain.body.toString())).toMatchObject({ error: { code: 'desktop_offline' } });
  expect(proxy.hub.count('poll')).toBe(0);
  // The same call with the mark registers a polling bridge.
  callWhole(link, 'marked', '/bridge/register', {});
  expect((await answerOf(link, 'marked')).status).toBe(201);
  expect(proxy.hub.count('poll')).toBe(1);
});

it('answers a bridge call for no route 404 not_found, and the link goes on', async () => {
  link.ws.send(encodeLinkMessage({ type: 'http_request', id: 'nowhere', method: 'GET', path: '/bridge/elsewhere', headers: CALL, end: true }));
  const answer = await answerOf(link, 'nowhere');
  expect(answer.status).toBe(404);
  expect(JSON.parse(answer.body.toString())).toMatchObject({ error: { code: 'not_found' } });
  expect(await register(link)).toMatch(/^p/);
});

it('forgets a poll that api-backend cancelled (its bridge went away): the request waits for the next poll instead of vanishing into the dead one', async () => {
  const bridgeId = await register(link);
  poll(link, 'dead', bridgeId);
  // Give the poll time to reach its wait before it is cancelled.
  await new Promise((resolve) => setTimeout(resolve, 100));
  link.ws.send(encodeLinkMessage({ type: 'cancel', id: 'dead', reason: 'client disconnected' }));
  link.ws.send(encodeLinkMessage({ type: 'http_request', id: 'web2', method: 'GET', path: '/api/ps', headers: {}, end: true }));
  // Long enough for a poll still thought waiting to be handed the request (delivery waits a turn).
  await new Promise((resolve) => setTimeout(resolve, 200));
  poll(link, 'alive', bridgeId);
  const answer = await answerOf(link, 'alive');
  expect(batchMessages(answer.body)).toEqual([expect.objectContaining({ type: 'http_request', path: '/api/ps' })]);
});

it('credits a streamed answer back to api-backend only as its bytes leave for the web client, so the proxy holds at most one window of it', async () => {
  const headRecord = await startStreamedAnswer('web4', 'long');

  // api-backend's part, keeping to its credit: it sends all the answer it may, for as long as
  // credit comes back, while the web client takes nothing past its first window.
  let credit = INITIAL_WINDOW - headRecord.byteLength;
  let sent = 0;
  let forwarded = 0;
  const take = (events: LinkEvent[]) => {
    let granted = 0;
    for (const event of events) {
      if (event.kind === 'data' && event.id === 'web4') forwarded += event.payload.byteLength;
      if (event.kind === 'control' && event.message.type === 'window' && event.message.id === 'long') granted += event.message.bytes;
    }
    return granted;
  };
  for (;;) {
    while (credit > 0) {
      const size = Math.min(credit, MAX_CHUNK_BYTES);
      link.ws.send(encodeData('long', Buffer.alloc(size, 2)), { binary: true });
      credit -= size;
      sent += size;
    }
    const granted = take(await link.settle(300));
    if (granted === 0) break;
    credit += granted;
  }
  // The web client's window, and at most one frame past it (flow.ts).
  expect(forwarded).toBeGreaterThanOrEqual(INITIAL_WINDOW);
  expect(forwarded).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_CHUNK_BYTES);
  // What api-backend sent and the web client did not get is what the proxy holds: under one
  // window (credit comes back only for bytes that left, so the head record's never does).
  expect(sent - forwarded).toBeLessThan(INITIAL_WINDOW);

  // The web client takes its window: the held bytes leave, and credit comes back for them.
  link.ws.send(encodeLinkMessage({ type: 'window', id: 'web4', bytes: INITIAL_WINDOW }));
  const before = forwarded;
  expect(take(await link.settle(500))).toBeGreaterThan(0);
  expect(forwarded).toBeGreaterThan(before);
});

it('grants back no more of a streamed answer than its web client took: api-backend sending past that credit loses the link (1008)', async () => {
  // The web client's stream grants nothing back, so the proxy may hand the desktop's answer on only up to one window.
  await startStreamedAnswer('web3', 'big');
  const chunk = Buffer.alloc(MAX_CHUNK_BYTES, 1);
  const frames = Math.ceil((3 * INITIAL_WINDOW) / MAX_CHUNK_BYTES) + 2;
  for (let i = 0; i < frames; i++) link.ws.send(encodeData('big', chunk), { binary: true });
  expect((await link.closed).code).toBe(FLOW_CONTROL_CLOSE_CODE);
});
