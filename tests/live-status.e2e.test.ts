/**
 * `GET /api/me/events`, the live status the console's My PC follows, read with a plain fetch as
 * the console does (EventSource cannot send a token): the caller's tunnel health comes at once,
 * then again when their bridge connects (with the tunnel's round trip from the proxy's pings) and
 * when it leaves; another user's stream hears none of it; no token is a 401; a user's streams are
 * bounded; a relay shutting down ends the streams instead of waiting on them. A real relay
 * (process driver), real bridges.
 */
import type { TunnelHealth } from '@ctll/protocol';
import { startLayout, type Layout } from './helpers/layout';
import { openEventStream, type EventStream } from './helpers/event-stream';

jest.setTimeout(60_000);

let layout: Layout;
const streams: EventStream[] = [];

beforeAll(async () => {
  layout = await startLayout();
});

afterAll(async () => {
  for (const stream of streams) stream.close();
  await layout?.close();
});

async function follow(userId: string | null): Promise<EventStream> {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (userId) headers.authorization = `Bearer ${layout.token(userId)}`;
  const stream = await openEventStream(`${layout.relay.url}/api/me/events`, headers);
  streams.push(stream);
  return stream;
}

const health = (event: { data: string }) => JSON.parse(event.data) as TunnelHealth;

test('without a token the event stream is refused with 401 and the JSON error body', async () => {
  const stream = await follow(null);
  expect(stream.response.status).toBe(401);
  expect(((await stream.response.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
});

test("the stream says the PC's state at once, then when its bridge connects (with the tunnel's round trip) and leaves; another user hears nothing of it", async () => {
  const carol = await follow('carol');
  const dave = await follow('dave');
  expect(carol.response.headers.get('content-type')).toMatch(/^text\/event-stream/);

  const first = await carol.next(5_000);
  expect(first.event).toBe('health');
  expect(health(first)).toMatchObject({ connected: false, desktop: 'offline', transport: null, rttMs: null });
  expect(health(await dave.next(5_000))).toMatchObject({ connected: false });

  const bridge = await layout.connectBridge('carol');
  const online = health(await carol.until((event) => health(event).connected));
  expect(online).toMatchObject({ desktop: 'online', transport: 'ws', proxy: 'running' });
  // The proxy pings a new tunnel at once: its round trip follows within moments, not a ping interval.
  const timed = online.rttMs !== null ? online : health(await carol.until((event) => health(event).rttMs !== null));
  expect(timed.rttMs).toBeGreaterThanOrEqual(0);
  expect(timed.rttAverageMs).toBeGreaterThanOrEqual(0);
  // The same figure in the polled route.
  const polled = (await (await layout.fetchAs('carol', '/health')).json()) as TunnelHealth;
  expect(polled.rttMs).toEqual(expect.any(Number));

  await bridge.close();
  const offline = health(await carol.until((event) => !health(event).connected));
  expect(offline).toMatchObject({ desktop: 'offline', rttMs: null });

  // Dave's stream is still open and has said nothing since his own first event.
  expect(dave.seen).toHaveLength(1);
  expect(await Promise.race([dave.ended.then(() => 'ended'), Promise.resolve('open')])).toBe('open');
});

test('a user has at most five live streams; a sixth is 429 until one of them closes', async () => {
  const open: EventStream[] = [];
  for (let i = 0; i < 5; i++) {
    const stream = await follow('erin');
    expect(stream.response.status).toBe(200);
    await stream.next(5_000);
    open.push(stream);
  }
  const sixth = await follow('erin');
  expect(sixth.response.status).toBe(429);
  expect(((await sixth.response.json()) as { error: { code: string } }).error.code).toBe('too_many_event_streams');
  // Another user is not held up by erin's streams.
  expect((await follow('frank')).response.status).toBe(200);

  open[0].close();
  let again: EventStream | undefined;
  for (let tries = 0; tries < 50 && again?.response.status !== 200; tries++) {
    if (again) await new Promise((resolve) => setTimeout(resolve, 100));
    again = await follow('erin');
  }
  expect(again!.response.status).toBe(200);
});

test('a relay shutting down ends the open streams cleanly instead of waiting out its drain grace on them', async () => {
  const stream = await follow('grace');
  await stream.next(5_000);
  const restarting = layout.restartRelay();
  expect(await stream.ended).toBe(true);
  await restarting;
});
