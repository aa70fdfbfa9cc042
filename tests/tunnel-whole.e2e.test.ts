/**
 * Whole frames on the desktop's tunnel (protocol/src/tunnel-whole.ts) through the real relay: the
 * bridge's offer and the proxy's answer cross api-backend on both transports (the upgrade's
 * headers, the registration's body, the answer POST's content type), so a caller's short request
 * reaches the desktop as one frame and its short answer comes back from one. A hand-driven desktop
 * plays the bridge, to see which form arrives; an old one (no offer) still gets the old form.
 */
import { encodeControl, encodeWhole, WHOLE_FRAMES_HEADER } from '@ctll/protocol';
import { startLayout, type Layout } from './helpers/layout';
import { openFrameDesktop, registerPollDesktop, shortAnswerHead, type FrameDesktop } from './helpers/frame-desktop';

let layout: Layout;
beforeAll(async () => {
  layout = await startLayout();
});
afterAll(() => layout?.close());

const answerHead = shortAnswerHead;

const show = (userId: string, body: string) =>
  layout.fetchAs(userId, '/api/show', { method: 'POST', headers: { 'content-type': 'application/json' }, body });

function wsDesktop(userId: string, offer: boolean): Promise<FrameDesktop> {
  const headers = { authorization: `Bearer ${layout.token(userId)}`, ...(offer ? { [WHOLE_FRAMES_HEADER]: '1' } : {}) };
  return openFrameDesktop(`${layout.relay.url.replace('http', 'ws')}/ws/tunnel`, headers);
}

/** Answers whatever request comes next the old way (head, data, end): a warm-up, so later requests take the frame link. */
async function answerOld(desktop: FrameDesktop): Promise<void> {
  for (;;) {
    const frame = await desktop.next();
    const id = frame.kind === 'whole' ? frame.whole.head.id : frame.kind === 'control' && frame.message.type === 'http_request' ? frame.message.id : undefined;
    if (id === undefined) continue;
    desktop.ws.send(encodeControl({ type: 'http_response', id, status: 204, headers: {}, end: true }));
    return;
  }
}

it('a bridge that offers whole frames over WebSocket is told so through api-backend, and a short request and its answer each cross as one frame', async () => {
  const desktop = await wsDesktop('whole-ws', true);
  expect(desktop.answered).toBe('1');
  const warmUp = layout.fetchAs('whole-ws', '/api/tags');
  await answerOld(desktop);
  expect((await warmUp).status).toBe(204);

  const answering = show('whole-ws', '{"model":"test-model"}');
  const request = await desktop.next();
  if (request.kind !== 'whole') throw new Error(`expected a whole request, got ${request.kind}`);
  expect(request.whole.head).toMatchObject({ type: 'http_request', method: 'POST', path: '/api/show' });
  expect(request.whole.body.toString()).toBe('{"model":"test-model"}');
  const body = Buffer.from('{"details":{"family":"test"}}');
  desktop.ws.send(encodeWhole(answerHead(request.whole.head.id, body), body)!, { binary: true });
  const res = await answering;
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ details: { family: 'test' } });
  desktop.ws.close();
});

it('an old bridge that offers nothing hears nothing of whole frames and gets the request as head, data and end', async () => {
  const desktop = await wsDesktop('old-ws', false);
  expect(desktop.answered).toBeUndefined();
  const warmUp = layout.fetchAs('old-ws', '/api/tags');
  await answerOld(desktop);
  await warmUp;

  const answering = show('old-ws', '{"model":"old"}');
  const kinds: string[] = [];
  let id = '';
  while (!kinds.includes('end')) {
    const frame = await desktop.next();
    kinds.push(frame.kind === 'control' ? frame.message.type : frame.kind);
    if (frame.kind === 'control' && frame.message.type === 'http_request') id = frame.message.id;
  }
  expect(kinds).toEqual(['http_request', 'data', 'end']);
  desktop.ws.send(encodeControl({ type: 'http_response', id, status: 204, headers: {}, end: true }));
  expect((await answering).status).toBe(204);
  desktop.ws.close();
});

it('a polling bridge that offers whole frames at registration gets a short request as one record and POSTs its answer as one frame, through api-backend', async () => {
  const userId = 'whole-poll';
  const { status, registration, poll, respond } = await registerPollDesktop(layout.relay.url, layout.token(userId), { whole: true });
  expect(status).toBe(201);
  expect(registration.whole).toBe(true);

  const warmUp = layout.fetchAs(userId, '/api/tags');
  const [first] = await poll();
  const warmId = first.kind === 'whole' ? first.whole.head.id : first.kind === 'control' && first.message.type === 'http_request' ? first.message.id : '';
  const none = Buffer.alloc(0);
  expect((await respond(warmId, encodeWhole({ ...answerHead(warmId, none), status: 204, headers: {} }, none)!)).status).toBe(200);
  expect((await warmUp).status).toBe(204);

  const answering = show(userId, '{"model":"polled"}');
  const frames = await poll();
  expect(frames.map((frame) => frame.kind)).toEqual(['whole']);
  const request = frames[0];
  if (request.kind !== 'whole') throw new Error('unreachable');
  expect(request.whole.body.toString()).toBe('{"model":"polled"}');
  const body = Buffer.from('{"details":{"family":"polled"}}');
  expect((await respond(request.whole.head.id, encodeWhole(answerHead(request.whole.head.id, body), body)!)).status).toBe(200);
  const res = await answering;
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ details: { family: 'polled' } });
});
