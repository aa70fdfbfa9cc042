/**
 * Which desktop gets a new request when a user runs more than one bridge (tunnel/hub.ts), and
 * what the hub writes to the session journal: a real proxy server in this process, raw
 * WebSockets and hand-made polls playing the bridges.
 */
import { decodeFrame, encodeControl, PROXY_SECRET_HEADER, RecordReader, TUNNELS_RECONNECT_PATH, type ControlMessage } from '@ctll/protocol';
import { callRelay, connectDesktop, registerPoller, SECRET, startProxy, type RawDesktop, type TestProxy } from './helpers/proxy';
import { waitUntil } from './helpers/wait';

let proxy: TestProxy;
beforeEach(async () => {
  proxy = await startProxy({ BRIDGE_POLL_TIMEOUT_MS: '2000' });
});
afterEach(() => proxy.close());

async function nextRequest(desktop: RawDesktop): Promise<Extract<ControlMessage, { type: 'http_request' }>> {
  for (;;) {
    const message = await desktop.next();
    if (message.type === 'http_request') return message;
  }
}

/** Answers the request 200 with `who` as a header, so the caller can tell which desktop answered. */
async function answerAs(desktop: RawDesktop, who: string): Promise<void> {
  const request = await nextRequest(desktop);
  desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: { 'x-desktop': who }, end: true }));
}

it('sends new requests to the newest WebSocket desktop, and to the one before once the newest leaves', async () => {
  const older = await connectDesktop(proxy);
  const newer = await connectDesktop(proxy);
  const first = callRelay(proxy, '/one');
  await answerAs(newer, 'newer');
  expect((await first).headers['x-desktop']).toBe('newer');
  newer.ws.close();
  await waitUntil(() => proxy.hub.count('ws') === 1, 'the newer desktop is gone');
  const second = callRelay(proxy, '/two');
  await answerAs(older, 'older');
  expect((await second).headers['x-desktop']).toBe('older');
  older.ws.close();
});

it('prefers a WebSocket desktop over a polling bridge registered after it, and falls back to polling when it leaves', async () => {
  const ws = await connectDesktop(proxy);
  const bridgeId = await registerPoller(proxy);
  expect(proxy.hub.transport()).toBe('ws');
  const first = callRelay(proxy, '/one');
  await answerAs(ws, 'ws');
  expect((await first).headers['x-desktop']).toBe('ws');
  ws.ws.close();
  await waitUntil(() => proxy.hub.count('ws') === 0, 'the WebSocket desktop is gone');
  expect(proxy.hub.transport()).toBe('poll');
  const second = callRelay(proxy, '/two');
  second.catch(() => undefined);
  const poll = await fetch(`${proxy.url}/bridge/poll/${bridgeId}`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
  expect(poll.status).toBe(200);
  const records = new RecordReader().push(Buffer.from(await poll.arrayBuffer()));
  if (!records.ok) throw new Error(records.error);
  const frame = decodeFrame(records.value[0]);
  expect(frame.ok && frame.value.kind === 'control' && frame.value.message).toMatchObject({ type: 'http_request', path: '/two' });
});

it('journals each desktop session once: opened, then closed with its request and byte counts and the close reason', async () => {
  const desktop = await connectDesktop(proxy);
  const res = callRelay(proxy, '/counted', Buffer.from('12345'));
  const request = await nextRequest(desktop);
  desktop.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 204, headers: {}, end: true }));
  expect((await res).statusCode).toBe(204);
  desktop.ws.close(1000, 'bye');
  await waitUntil(() => proxy.journal.lastSeq === 2, 'the session is journalled');
  const [opened, closed] = proxy.journal.since(0);
  expect(opened).toMatchObject({ type: 'tunnel_opened', transport: 'ws' });
  expect(closed).toMatchObject({ type: 'tunnel_closed', link: opened.link, transport: 'ws', requests: 1, reason: '1000 bye' });
  // The 5 body bytes may still be waiting for credit when the 204 ends the exchange; never more.
  expect((closed as { bytesToDesktop: number }).bytesToDesktop).toBeLessThanOrEqual(5);
  expect(proxy.hub.info()).toEqual([]);
});

it('closes only the WebSocket tunnels, with 1012, when api-backend restarts; polling bridges stay registered', async () => {
  const desktop = await connectDesktop(proxy);
  const bridgeId = await registerPoller(proxy);
  const res = await fetch(`${proxy.url}${TUNNELS_RECONNECT_PATH}`, { method: 'POST', headers: { [PROXY_SECRET_HEADER]: SECRET } });
  expect(await res.json()).toEqual({ closed: 1 });
  expect(await desktop.closed).toEqual({ code: 1012, reason: 'relay restarting' });
  expect(proxy.hub.info().map((link) => [link.id, link.transport])).toEqual([[bridgeId, 'poll']]);
  expect(proxy.hub.transport()).toBe('poll');
});
