/**
 * Growing windows on the desktop's WebSocket tunnel (protocol/src/stream-window.ts) through the
 * real relay: the bridge's declaration crosses api-backend to the user's proxy and its answer comes
 * back on the 101; then a request body the proxy sends stops at each window and says `blocked`,
 * and a grant that grows the window lets more through; an answer the desktop sends has its window
 * grown by the proxy once the caller has read what came. A hand-driven desktop plays the bridge,
 * to see each frame and to grant exactly what it means to; an old one (no declaration) keeps fixed
 * windows and never hears `blocked`. A polling desktop that offers a window at registration gets
 * more than one window of a stream in a poll answer once the stream was held back by its window.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  encodeControl,
  encodeData,
  encodeWhole,
  INITIAL_WINDOW,
  MAX_CHUNK_BYTES,
  MAX_STREAM_WINDOW,
  POLL_STREAM_WINDOW,
  STREAM_WINDOW_HEADER,
  type Frame,
} from '@ctll/protocol';
import { startLayout, type Layout } from './helpers/layout';
import { openFrameDesktop, registerPollDesktop, type FrameDesktop } from './helpers/frame-desktop';

const MIB = 1024 * 1024;

let layout: Layout;
beforeAll(async () => {
  layout = await startLayout();
});
afterAll(() => layout?.close());

function wsDesktop(userId: string, declare: boolean): Promise<FrameDesktop> {
  const headers = { authorization: `Bearer ${layout.token(userId)}`, ...(declare ? { [STREAM_WINDOW_HEADER]: String(4 * MIB) } : {}) };
  return openFrameDesktop(`${layout.relay.url.replace('http', 'ws')}/ws/tunnel`, headers);
}

/** The id of a request frame, whole or a head. */
function requestId(frame: Frame): string | undefined {
  if (frame.kind === 'whole' && frame.whole.head.type === 'http_request') return frame.whole.head.id;
  if (frame.kind === 'control' && frame.message.type === 'http_request') return frame.message.id;
  return undefined;
}

/** Answers the next request with an empty 204: a warm-up, so later requests take the frame link. */
async function answerWarmUp(desktop: FrameDesktop, userId: string): Promise<void> {
  const warmUp = layout.fetchAs(userId, '/api/tags');
  for (;;) {
    const id = requestId(await desktop.next());
    if (id === undefined) continue;
    desktop.ws.send(encodeControl({ type: 'http_response', id, status: 204, headers: {}, end: true }));
    break;
  }
  expect((await warmUp).status).toBe(204);
}

/** Request body bytes until the proxy says `blocked` (or the body's `end`). */
async function bodyUntilBlocked(desktop: FrameDesktop, into: Buffer[]): Promise<{ id: string; bytes: number; ended: boolean }> {
  let id = '';
  let bytes = 0;
  for (;;) {
    const frame = await desktop.next();
    id = requestId(frame) ?? id;
    if (frame.kind === 'data') {
      into.push(frame.data.payload);
      bytes += frame.data.payload.byteLength;
      id = frame.data.id;
    } else if (frame.kind === 'control' && frame.message.type === 'blocked') return { id: frame.message.id, bytes, ended: false };
    else if (frame.kind === 'control' && frame.message.type === 'end') return { id: frame.message.id, bytes, ended: true };
  }
}

const digest = (buffer: Buffer) => createHash('sha256').update(buffer).digest('hex');

it('a desktop that declares growing windows hears the proxy declare its own, through api-backend', async () => {
  const desktop = await wsDesktop('window-declare', true);
  expect(desktop.upgradeHeaders[STREAM_WINDOW_HEADER]).toBe(String(MAX_STREAM_WINDOW));
  desktop.ws.close();
});

it('a request body stops at each window and says blocked; a grant that doubles the window lets twice as much through, and the body arrives whole', async () => {
  const userId = 'window-upload';
  const desktop = await wsDesktop(userId, true);
  await answerWarmUp(desktop, userId);
  const body = randomBytes(6 * MIB);
  const answering = layout.fetchAs(userId, '/api/upload', { method: 'POST', body });
  const received: Buffer[] = [];

  const first = await bodyUntilBlocked(desktop, received);
  expect(first.ended).toBe(false);
  expect(first.bytes).toBeGreaterThanOrEqual(INITIAL_WINDOW);
  expect(first.bytes).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_CHUNK_BYTES);

  // Everything taken, and the window doubled: credit for two windows.
  desktop.ws.send(encodeControl({ type: 'window', id: first.id, bytes: first.bytes + INITIAL_WINDOW }));
  const second = await bodyUntilBlocked(desktop, received);
  expect(second.ended).toBe(false);
  expect(second.bytes).toBeGreaterThan(INITIAL_WINDOW + MAX_CHUNK_BYTES);
  expect(second.bytes).toBeLessThanOrEqual(2 * INITIAL_WINDOW + MAX_CHUNK_BYTES);

  // From here on, each stall is met with credit for what came, until the body ends.
  let last = second;
  while (!last.ended) {
    desktop.ws.send(encodeControl({ type: 'window', id: last.id, bytes: last.bytes }));
    last = await bodyUntilBlocked(desktop, received);
  }
  const whole = Buffer.concat(received);
  expect(whole.byteLength).toBe(body.byteLength);
  expect(digest(whole)).toBe(digest(body));
  desktop.ws.send(encodeControl({ type: 'http_response', id: last.id, status: 204, headers: {}, end: true }));
  expect((await answering).status).toBe(204);
  desktop.ws.close();
});

it('an old desktop that declares nothing keeps fixed windows: no blocked, and a grant past the window closes its tunnel', async () => {
  const userId = 'window-old';
  const desktop = await wsDesktop(userId, false);
  expect(desktop.upgradeHeaders[STREAM_WINDOW_HEADER]).toBeUndefined();
  await answerWarmUp(desktop, userId);
  const answering = layout.fetchAs(userId, '/api/upload', { method: 'POST', body: randomBytes(3 * MIB) }).catch(() => undefined);
  let id = '';
  let bytes = 0;
  while (bytes < INITIAL_WINDOW) {
    const frame = await desktop.next();
    if (frame.kind === 'data') {
      id = frame.data.id;
      bytes += frame.data.payload.byteLength;
    }
    expect(frame.kind === 'control' && frame.message.type === 'blocked').toBe(false);
  }
  // Whatever the proxy sent before our ping's pong is queued now: no more data, and no blocked.
  const after = await desktop.roundTrip();
  expect(after.some((frame) => frame.kind === 'control' && frame.message.type === 'blocked')).toBe(false);
  bytes += after.reduce((sum, frame) => sum + (frame.kind === 'data' ? frame.data.payload.byteLength : 0), 0);
  expect(bytes).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_CHUNK_BYTES);

  const closed = new Promise<number>((resolve) => desktop.ws.once('close', (code) => resolve(code)));
  desktop.ws.send(encodeControl({ type: 'window', id, bytes: bytes + INITIAL_WINDOW }));
  expect(await closed).toBe(1008);
  await answering;
});

it('an answer whose caller reads what comes gets its window grown by the proxy on blocked, and more than a window then arrives whole', async () => {
  const userId = 'window-download';
  const desktop = await wsDesktop(userId, true);
  await answerWarmUp(desktop, userId);
  const answering = layout.fetchAs(userId, '/api/download').then(async (res) => ({ status: res.status, body: Buffer.from(await res.arrayBuffer()) }));
  let id: string | undefined;
  while (id === undefined) id = requestId(await desktop.next());

  const sent: Buffer[] = [];
  const send = (bytes: number) => {
    for (let offset = 0; offset < bytes; offset += MAX_CHUNK_BYTES) {
      const payload = randomBytes(Math.min(MAX_CHUNK_BYTES, bytes - offset));
      sent.push(payload);
      desktop.ws.send(encodeData(id!, payload), { binary: true });
    }
  };
  desktop.ws.send(encodeControl({ type: 'http_response', id, status: 200, headers: { 'content-type': 'application/octet-stream' }, end: false }));
  send(INITIAL_WINDOW);
  desktop.ws.send(encodeControl({ type: 'blocked', id }));

  // The caller reads as the bytes come, so the proxy grows the window: its grants pass what we sent.
  let granted = 0;
  while (granted <= INITIAL_WINDOW) {
    const frame = await desktop.next();
    if (frame.kind === 'control' && frame.message.type === 'window' && frame.message.id === id) granted += frame.message.bytes;
  }
  // All the credit we hold now, more than one window, goes at once; a proxy that had not grown its
  // window would close the tunnel for it.
  const sentBytes = INITIAL_WINDOW;
  const credit = INITIAL_WINDOW - sentBytes + granted;
  expect(credit).toBeGreaterThan(INITIAL_WINDOW);
  send(credit);
  desktop.ws.send(encodeControl({ type: 'end', id }));
  const answer = await answering;
  expect(answer.status).toBe(200);
  const expected = Buffer.concat(sent);
  expect(answer.body.byteLength).toBe(expected.byteLength);
  expect(digest(answer.body)).toBe(digest(expected));
  desktop.ws.close();
});

/**
 * Plays a desktop sending an answer's body: sends all the credit it holds, says `blocked`, and
 * waits until the proxy's grants pass what it sent: credit for bytes its caller read can come to
 * no more than that, so the window grew. Returns all it was granted by then (and by a ping's round
 * trip after): the growth, plus credit for some or all of the bytes read.
 */
async function spendUntilGrown(desktop: FrameDesktop, id: string, credit: number, sent: Buffer[]): Promise<number> {
  for (let offset = 0; offset < credit; offset += MAX_CHUNK_BYTES) {
    const payload = randomBytes(Math.min(MAX_CHUNK_BYTES, credit - offset));
    sent.push(payload);
    desktop.ws.send(encodeData(id, payload), { binary: true });
  }
  desktop.ws.send(encodeControl({ type: 'blocked', id }));
  const grantsIn = (frames: Frame[]) =>
    frames.reduce((sum, frame) => sum + (frame.kind === 'control' && frame.message.type === 'window' && frame.message.id === id ? frame.message.bytes : 0), 0);
  let granted = 0;
  while (granted <= credit) granted += grantsIn([await desktop.next()]);
  return granted + grantsIn(await desktop.roundTrip());
}

it('a new answer on the tunnel grows at its first blocked straight to the window the last answer ended with, not just double', async () => {
  const userId = 'window-next-stream';
  const desktop = await wsDesktop(userId, true);
  await answerWarmUp(desktop, userId);
  const download = async (stalls: number) => {
    const answering = layout.fetchAs(userId, '/api/download').then(async (res) => ({ status: res.status, body: Buffer.from(await res.arrayBuffer()) }));
    let id: string | undefined;
    while (id === undefined) id = requestId(await desktop.next());
    desktop.ws.send(encodeControl({ type: 'http_response', id, status: 200, headers: { 'content-type': 'application/octet-stream' }, end: false }));
    const sent: Buffer[] = [];
    const grants: number[] = [];
    let credit = INITIAL_WINDOW;
    for (let stall = 0; stall < stalls; stall++) grants.push((credit = await spendUntilGrown(desktop, id, credit, sent)));
    desktop.ws.send(encodeControl({ type: 'end', id }));
    const answer = await answering;
    expect(answer.status).toBe(200);
    expect(digest(answer.body)).toBe(digest(Buffer.concat(sent)));
    return grants;
  };

  // The first answer starts at one window and doubles at each stall its reading caller meets:
  // 2, 4, then 8 MiB, each grant the growth (1, 2, 4 MiB) plus credit for some of what was read.
  const first = await download(3);
  expect(first[2]).toBeGreaterThan(4 * MIB);
  // The second starts at one window too, and its first stall takes it to the 8 MiB the first ended
  // with: a 7 MiB grant of growth alone, where doubling would grant 1 MiB and credit for at most 1.
  const [jump] = await download(1);
  expect(jump).toBeGreaterThanOrEqual(7 * MIB);
  expect(jump).toBeLessThanOrEqual(8 * MIB);
  desktop.ws.close();
});

it('a polling desktop that offers a window at registration gets up to that much of a request body in one poll answer, once the window held the stream back', async () => {
  const userId = 'window-poll';
  const { status, registration, poll, respond } = await registerPollDesktop(layout.relay.url, layout.token(userId), { whole: true, window: MAX_STREAM_WINDOW });
  expect(status).toBe(201);
  expect(registration.window).toBe(POLL_STREAM_WINDOW);
  const answerEmpty = (id: string) => {
    const none = Buffer.alloc(0);
    return respond(id, encodeWhole({ type: 'http_response', id, status: 204, headers: {}, end: true }, none)!);
  };

  const warmUp = layout.fetchAs(userId, '/api/tags');
  const [first] = await poll();
  expect((await answerEmpty(requestId(first)!)).status).toBe(200);
  expect((await warmUp).status).toBe(204);

  // The window doubles from 1 MiB at each poll until one answer carries all it may of the stream.
  const body = randomBytes(3 * POLL_STREAM_WINDOW);
  const answering = layout.fetchAs(userId, '/api/upload', { method: 'POST', body });
  const received: Buffer[] = [];
  const perPoll: number[] = [];
  let id = '';
  let ended = false;
  while (!ended) {
    // Slow to poll, as a desktop over a long round trip is: the stream spends its window meanwhile.
    await sleep(200);
    let bytes = 0;
    for (const frame of await poll()) {
      id = requestId(frame) ?? id;
      if (frame.kind === 'data') {
        received.push(frame.data.payload);
        bytes += frame.data.payload.byteLength;
      } else if (frame.kind === 'control' && frame.message.type === 'end') ended = true;
    }
    perPoll.push(bytes);
  }
  expect(Math.max(...perPoll)).toBeGreaterThan(POLL_STREAM_WINDOW / 2 + MAX_CHUNK_BYTES);
  expect(Math.max(...perPoll)).toBeLessThanOrEqual(POLL_STREAM_WINDOW + MAX_CHUNK_BYTES);
  const whole = Buffer.concat(received);
  expect(whole.byteLength).toBe(body.byteLength);
  expect(digest(whole)).toBe(digest(body));
  expect((await answerEmpty(id)).status).toBe(200);
  expect((await answering).status).toBe(204);
});

it('a polling desktop that offers no window gets at most one window of a stream per poll answer', async () => {
  const userId = 'window-poll-old';
  const { registration, poll } = await registerPollDesktop(layout.relay.url, layout.token(userId), {});
  expect(registration.window).toBeUndefined();
  // Never answered: the layout's close ends it.
  void layout.fetchAs(userId, '/api/upload', { method: 'POST', body: randomBytes(4 * MIB) }).catch(() => undefined);
  let total = 0;
  while (total < 4 * MIB) {
    await sleep(200);
    const bytes = (await poll()).reduce((sum, frame) => sum + (frame.kind === 'data' ? frame.data.payload.byteLength : 0), 0);
    expect(bytes).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_CHUNK_BYTES);
    total += bytes;
  }
});
