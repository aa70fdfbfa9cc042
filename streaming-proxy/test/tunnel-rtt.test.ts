/**
 * The tunnel's round trip in the proxy's /status (tunnel/round-trip.ts, timed from ws-link's
 * pings): what the console's My PC shows as "Tunnel round trip". A real proxy server in this
 * process; raw WebSockets play the desktop, some answering pings late or with the wrong payload.
 */
import WebSocket from 'ws';
import { PROXY_SECRET_HEADER, proxyStatusSchema, type ProxyStatus } from '@ctll/protocol';
import { connectDesktop, registerPoller, SECRET, startProxy, type TestProxy } from './helpers/proxy';
import { waitUntil } from './helpers/wait';

let proxy: TestProxy;
// Pings far apart: every sample in these tests comes from the ping sent at connect.
beforeEach(async () => {
  proxy = await startProxy({ PROXY_PING_INTERVAL_MS: '20000' });
});
afterEach(() => proxy.close());

async function status(): Promise<ProxyStatus> {
  const res = await fetch(`${proxy.url}/status`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
  return proxyStatusSchema.parse(await res.json());
}

async function statusWhen(check: (status: ProxyStatus) => boolean, what: string): Promise<ProxyStatus> {
  let latest = await status();
  const deadline = Date.now() + 5000;
  while (!check(latest)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}: ${JSON.stringify(latest)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    latest = await status();
  }
  return latest;
}

/** A desktop that answers pings itself: `answer` decides what it sends back, and when. */
async function manualDesktop(answer: (ws: WebSocket, ping: Buffer) => void): Promise<WebSocket> {
  const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/ws/tunnel`, { headers: { [PROXY_SECRET_HEADER]: SECRET }, autoPong: false });
  ws.on('ping', (payload) => answer(ws, payload));
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return ws;
}

it("shows a WebSocket desktop's round trip right after it connects, without waiting a whole ping interval", async () => {
  const desktop = await connectDesktop(proxy);
  const answered = await statusWhen((s) => s.rtt != null, 'the first pong is timed');
  expect(answered.rtt).toEqual({ latestMs: expect.any(Number), averageMs: answered.rtt!.latestMs, samples: 1 });
  expect(answered.rtt!.latestMs).toBeGreaterThanOrEqual(0);
  expect(answered.desktops).toHaveLength(1);
  expect(answered.desktops[0].rtt).toEqual(answered.rtt);
  desktop.ws.close();
});

it('times a desktop that answers its ping late as slow, and ignores a pong that does not echo the ping', async () => {
  // At once a pong with the wrong payload (unsolicited, or for an older ping), the real one 250 ms later.
  const ws = await manualDesktop((socket, ping) => {
    socket.pong(Buffer.from('nope'));
    setTimeout(() => socket.pong(ping), 250);
  });
  const answered = await statusWhen((s) => s.rtt != null, 'the real pong is timed');
  expect(answered.rtt!.latestMs).toBeGreaterThanOrEqual(250);
  expect(answered.rtt!.samples).toBe(1);
  ws.close();
});

it('reports no round trip before the first pong, and none for a long-polling desktop', async () => {
  const silent = await manualDesktop(() => undefined);
  await waitUntil(() => proxy.hub.count('ws') === 1, 'the tunnel is in the hub');
  const unanswered = await status();
  expect(unanswered.rtt).toBeNull();
  expect(unanswered.desktops[0].rtt).toBeUndefined();
  silent.terminate();
  await waitUntil(() => proxy.hub.count('ws') === 0, 'the silent tunnel is gone');

  await registerPoller(proxy);
  const polled = await statusWhen((s) => s.desktops.length === 1, 'the poller is listed');
  expect(polled.transport).toBe('poll');
  expect(polled.rtt).toBeNull();
  expect(polled.desktops[0].rtt).toBeUndefined();
});
