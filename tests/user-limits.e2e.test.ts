/**
 * Every user is bounded. Each limit is met for real through a whole relay (process driver), set
 * low the way an operator lowers it: requests at once and the request rate (both transports),
 * desktop links, body bytes at the user's own proxy, proxy starts and stops, and the relay's
 * capacity. Every refusal is the catalogue's JSON error with a Retry-After, and another user
 * carries on meanwhile.
 */
import WebSocket from 'ws';
import { userHash } from '../api-backend/src/proxy/naming';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { startFrameEdge } from './helpers/frame-edge';
import { TRANSPORTS } from './helpers/matrix';
import { readMetric } from './helpers/metrics';

const MAX_BODY = 64 * 1024;

/** Small enough to reach in a test; the rate refills one token a minute, so nothing refills mid-test. */
const USER_LIMITS = {
  USER_MAX_STREAMS: '3',
  USER_RATE_BURST: '8',
  USER_RATE_PER_MINUTE: '1',
  USER_MAX_WS_LINKS: '2',
  USER_MAX_POLL_LINKS: '2',
  MAX_BODY_BYTES: String(MAX_BODY),
};

interface Refusal {
  status: number;
  code: string;
  message: string;
  retryAfter: string | null;
}

async function refusalOf(res: Response): Promise<Refusal> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, code: body.error.code, message: body.error.message, retryAfter: res.headers.get('retry-after') };
}

/** A generation of 10 tokens 200 ms apart: its answer has started long before it ends. */
function slowChat(layout: Layout, user: string): Promise<Response> {
  return layout.fetchAs(user, '/api/chat?delayMs=200', {
    method: 'POST',
    body: JSON.stringify({ model: 'm', messages: [], options: { num_predict: 10 } }),
  });
}

function callApi(layout: Layout, user: string, path: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
  return fetch(`${layout.relay.url}${path}`, {
    method: init.method ?? 'POST',
    headers: { authorization: `Bearer ${layout.token(user)}`, 'content-type': 'application/json' },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
}

/** A WebSocket tunnel dialled by hand: resolves with the open socket, or with the relay's refusal. */
function dialTunnel(layout: Layout, user: string): Promise<{ ws?: WebSocket; refusal?: Refusal }> {
  const ws = new WebSocket(`${layout.relay.url.replace('http', 'ws')}/ws/tunnel`, {
    headers: { authorization: `Bearer ${layout.token(user)}` },
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error: { code: string; message: string } };
        const retryAfter = res.headers['retry-after'];
        resolve({ refusal: { status: res.statusCode ?? 0, code: body.error.code, message: body.error.message, retryAfter: typeof retryAfter === 'string' ? retryAfter : null } });
        ws.terminate();
      });
    });
    ws.once('error', (error) => reject(error));
  });
}

describe.each(TRANSPORTS)('per-user limits at the proxy (transport %s)', (transport) => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({ transport, env: USER_LIMITS, llm: { tokenDelayMs: 20, tokens: 3 } });
  });
  afterAll(() => layout?.close());

  it('answers 429 too_many_streams with Retry-After to the request past USER_MAX_STREAMS, and serves again once one ends', async () => {
    const [user, other] = ['streamer', 'neighbour'];
    await layout.connectBridge(user);
    await layout.connectBridge(other);

    const running = await Promise.all([slowChat(layout, user), slowChat(layout, user), slowChat(layout, user)]);
    expect(running.map((res) => res.status)).toEqual([200, 200, 200]);

    expect(await refusalOf(await slowChat(layout, user))).toEqual({
      status: 429,
      code: 'too_many_streams',
      message: 'at most 3 requests at once for your desktop; wait for one to finish',
      retryAfter: '1',
    });
    // Another user's desktop is served while this one is at its limit.
    expect((await layout.fetchAs(other, '/api/tags')).status).toBe(200);

    // The three running answers were not disturbed, and once they are over the user is served again.
    for (const text of await Promise.all(running.map((res) => res.text()))) expect(text.trim().split('\n')).toHaveLength(11);
    expect((await layout.fetchAs(user, '/api/tags')).status).toBe(200);
  });

  it('answers 429 rate_limited with Retry-After once a user has spent USER_RATE_BURST, while another user is served', async () => {
    const [user, other] = ['burster', 'calm'];
    // The bridge's link takes one of the 8 tokens; 7 requests take the rest.
    await layout.connectBridge(user);
    await layout.connectBridge(other);
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await layout.fetchAs(user, '/api/tags')).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200]);

    const refusal = await refusalOf(await layout.fetchAs(user, '/api/tags'));
    expect(refusal).toMatchObject({ status: 429, code: 'rate_limited', message: 'too many requests: at most 1 a minute, in bursts of up to 8' });
    // One token a minute: the next one is due within the minute.
    expect(Number(refusal.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(refusal.retryAfter)).toBeLessThanOrEqual(60);

    expect((await layout.fetchAs(other, '/api/tags')).status).toBe(200);
  });

  it('answers 413 at the proxy itself for a body over MAX_BODY_BYTES, even from a caller that let it through, and cancels the desktop', async () => {
    const user = 'uploader';
    await layout.connectBridge(user);
    // The way a second api-backend with a larger MAX_BODY_BYTES would call: straight to the user's proxy.
    const handle = await layout.relay.manager.driver.inspect(userHash(user));
    const edge = await startFrameEdge(handle!.endpoint!, 100 * MAX_BODY);
    const direct = (body: RequestInit['body']) => fetch(`${edge.url}/sha256`, { method: 'POST', body, duplex: 'half' } as RequestInit);

    const declared = await refusalOf(await direct(Buffer.alloc(MAX_BODY + 1)));
    expect(declared).toMatchObject({ status: 413, code: 'payload_too_large', message: `the request body exceeds ${MAX_BODY} bytes` });

    // An upload that pauses after its first chunk, so the desktop's local request is under way
    // before the body crosses the limit.
    let sent = 0;
    const chunked = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 1) await waitFor(() => layout.llm.seen.some((r) => r.path === '/sha256' && r.headers['x-test-id'] === 'cut'), 5000, 'the upload to reach the desktop');
        if (sent === 40) return controller.close();
        sent += 1;
        controller.enqueue(new Uint8Array(4096));
      },
    });
    const aborted = layout.llm.aborted.length;
    const cut = await fetch(`${edge.url}/sha256`, {
      method: 'POST',
      headers: { 'x-test-id': 'cut' },
      body: chunked,
      duplex: 'half',
    } as RequestInit);
    expect(await refusalOf(cut)).toMatchObject({ status: 413, code: 'payload_too_large' });
    // The desktop had started receiving the upload; it is told to drop it.
    await waitFor(() => layout.llm.aborted.slice(aborted).includes('/sha256'), 5000, 'the local /sha256 upload to be aborted');

    const atLimit = await direct(Buffer.alloc(MAX_BODY));
    expect(atLimit.status).toBe(200);
    expect(((await atLimit.json()) as { bytes: number }).bytes).toBe(MAX_BODY);
    await edge.close();
  });
});

describe('desktop links per user', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({ env: USER_LIMITS });
  });
  afterAll(() => layout?.close());

  it('refuses a WebSocket tunnel past USER_MAX_WS_LINKS with 429 too_many_links and Retry-After; closing one makes room', async () => {
    const user = 'many-tunnels';
    const first = await dialTunnel(layout, user);
    const second = await dialTunnel(layout, user);
    expect([first.ws?.readyState, second.ws?.readyState]).toEqual([WebSocket.OPEN, WebSocket.OPEN]);

    const { metricsUrl } = layout.relay;
    if (!metricsUrl) throw new Error('the relay has no private listener');
    const metric = (name: string, labels?: Record<string, string>) => readMetric(metricsUrl, name, labels);
    const closesBefore = await metric('ctll_tunnel_closes_total');
    const third = await dialTunnel(layout, user);
    expect(third.ws).toBeUndefined();
    // What an operator's dashboard shows: two tunnels open, one refusal, and no tunnel closed by it.
    expect({
      open: await metric('ctll_tunnels_open'),
      refused: await metric('ctll_tunnel_upgrades_total', { result: 'too_many_links' }),
      closed: (await metric('ctll_tunnel_closes_total')) - closesBefore,
    }).toEqual({ open: 2, refused: 1, closed: 0 });
    // Two ping intervals (15 s each): by then a tunnel that died unseen has been dropped.
    expect(third.refusal).toEqual({
      status: 429,
      code: 'too_many_links',
      message: 'at most 2 WebSocket tunnels at once per user; close one, or wait for a lost one to be dropped',
      retryAfter: '30',
    });
    // The two open tunnels were kept: the newcomer did not push one out.
    expect([first.ws?.readyState, second.ws?.readyState]).toEqual([WebSocket.OPEN, WebSocket.OPEN]);

    // Another user's bridge connects and is served meanwhile.
    await layout.connectBridge('one-tunnel');
    expect((await layout.fetchAs('one-tunnel', '/api/tags')).status).toBe(200);

    const gone = new Promise((resolve) => first.ws!.once('close', resolve));
    first.ws!.close(1000, 'done');
    await gone;
    await waitFor(async () => {
      const again = await dialTunnel(layout, user);
      again.ws?.close(1000, 'done');
      return again.ws !== undefined;
    }, 5000, 'a tunnel to be accepted again');
    second.ws!.close(1000, 'done');
  });

  it('refuses a polling bridge past USER_MAX_POLL_LINKS with 429 too_many_links, but lets a bridge register again in its own place', async () => {
    const user = 'many-pollers';
    const register = (clientId: string, as = user) => callApi(layout, as, '/api/bridge/register', { body: { clientId } });
    expect((await register('laptop')).status).toBe(201);
    expect((await register('desktop')).status).toBe(201);

    expect(await refusalOf(await register('third-machine'))).toEqual({
      status: 429,
      code: 'too_many_links',
      message: 'at most 2 polling bridges at once per user; close one, or wait for a lost one to be dropped',
      // The grace period (30 s): by then a bridge that stopped polling has been dropped.
      retryAfter: '30',
    });
    // A bridge that registers again gives up its old registration: it is not a third one.
    expect((await register('laptop')).status).toBe(201);
    // Another user registers meanwhile.
    expect((await register('laptop', 'one-poller')).status).toBe(201);
  });
});

describe('proxy starts per user (PROXY_START_RATE_PER_MINUTE)', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({ env: { PROXY_START_RATE_PER_MINUTE: '2' } });
  });
  afterAll(() => layout?.close());

  it('answers 429 with Retry-After to a start/stop loop past the budget, while another user starts a proxy', async () => {
    const user = 'looper';
    const statuses: number[] = [];
    // Starts of a running proxy make nothing and cost nothing; the two that make one spend the budget.
    for (const action of ['start', 'start', 'start', 'stop', 'start', 'stop']) statuses.push((await callApi(layout, user, `/api/proxy/${action}`)).status);
    expect(statuses).toEqual([201, 200, 200, 200, 201, 200]);

    const refusal = await refusalOf(await callApi(layout, user, '/api/proxy/start'));
    expect(refusal).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(refusal.message).toMatch(/^your proxy was started 2 times in the last minute; try again in \d+ s$/);
    expect(Number(refusal.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(refusal.retryAfter)).toBeLessThanOrEqual(60);
    // The refused start made nothing, and a bridge dialling in meets the same answer.
    expect(((await (await callApi(layout, user, '/api/proxy/status', { method: 'GET' })).json()) as { status: string }).status).toBe('not-found');
    expect((await dialTunnel(layout, user)).refusal).toMatchObject({ status: 429, code: 'rate_limited' });

    expect((await callApi(layout, 'steady', '/api/proxy/start')).status).toBe(201);
  });
});

describe('relay capacity (PROXY_MAX)', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({ env: { PROXY_MAX: '2' } });
  });
  afterAll(() => layout?.close());

  it('turns a third user away with 503 capacity while two proxies run, and lets them in once one stops', async () => {
    expect((await callApi(layout, 'first', '/api/proxy/start')).status).toBe(201);
    expect((await callApi(layout, 'second', '/api/proxy/start')).status).toBe(201);

    const expected: Refusal = {
      status: 503,
      code: 'capacity',
      message: 'the relay is at capacity (2 proxies); try later or ask the operator to raise PROXY_MAX',
      retryAfter: '60',
    };
    expect(await refusalOf(await callApi(layout, 'third', '/api/proxy/start'))).toEqual(expected);
    // The third user's bridge meets the same answer, whichever way it dials in.
    expect((await dialTunnel(layout, 'third')).refusal).toEqual(expected);
    expect(await refusalOf(await callApi(layout, 'third', '/api/bridge/register', { body: { clientId: 'x' } }))).toEqual(expected);
    // Users who have a proxy keep it.
    expect((await callApi(layout, 'first', '/api/proxy/start')).status).toBe(200);

    expect((await callApi(layout, 'first', '/api/proxy/stop')).status).toBe(200);
    expect((await callApi(layout, 'third', '/api/proxy/start')).status).toBe(201);
  });
});
