/**
 * The long-poll transport's own rules, end to end: a bounded queue, the silence timeout for a
 * request nobody collects, dropping a bridge that went quiet, bridge ids that belong to their
 * owner, malformed answers, event-driven delivery, the health report, and the bridge's automatic
 * fallback from a blocked WebSocket. A hand-driven desktop (plain fetch against /api/bridge/*)
 * plays the bridge where the real one would never misbehave. The shared scenarios (streaming,
 * cancel, large bodies ...) run on this transport through tests/helpers/matrix.ts.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import {
  decodeFrame,
  encodeResponseHead,
  POLL_BATCH_CONTENT_TYPE,
  RecordReader,
  recordHeader,
  type ControlMessage,
  type Frame,
  type PollRegistration,
} from '@ctll/protocol';
import { startBridge, type Bridge } from '../bridge/src';
import { startLayout, waitFor, type Layout } from './helpers/layout';

/** A desktop driven by hand: each call is one plain HTTP request to the relay's bridge routes. */
interface HandDesktop {
  registration: PollRegistration;
  bridgeId: string;
  /** One long poll: its status, and the frames of a 200 answer. */
  poll(as?: string): Promise<{ status: number; contentType: string | null; frames: Frame[]; body: unknown }>;
  respond(requestId: string, body: RequestInit['body'], as?: string): Promise<Response>;
  heartbeat(messages?: unknown[], as?: string): Promise<Response>;
  /** Heartbeats every 200 ms until stopped: alive, but never collecting anything. */
  keepAlive(): () => void;
}

async function handDesktop(layout: Layout, userId: string): Promise<HandDesktop> {
  const url = (path: string) => `${layout.relay.url}/api/bridge/${path}`;
  const auth = (as = userId) => ({ authorization: `Bearer ${layout.token(as)}` });
  const res = await fetch(url('register'), {
    method: 'POST',
    headers: { ...auth(), 'content-type': 'application/json' },
    body: JSON.stringify({ clientId: 'hand', platform: 'test', version: '0.0.0' }),
  });
  expect(res.status).toBe(201);
  const registration = (await res.json()) as PollRegistration;
  const { bridgeId } = registration;
  const desktop: HandDesktop = {
    registration,
    bridgeId,
    async poll(as) {
      const answer = await fetch(url(`poll/${bridgeId}`), { headers: auth(as) });
      const bytes = Buffer.from(await answer.arrayBuffer());
      const contentType = answer.headers.get('content-type');
      if (answer.status !== 200 || contentType !== POLL_BATCH_CONTENT_TYPE) {
        return { status: answer.status, contentType, frames: [], body: bytes.byteLength ? JSON.parse(bytes.toString()) : undefined };
      }
      const records = new RecordReader().push(bytes);
      if (!records.ok) throw new Error(records.error);
      const frames = records.value.map((record) => {
        const frame = decodeFrame(record);
        if (!frame.ok) throw new Error(`the relay sent a bad frame: ${frame.error}`);
        return frame.value;
      });
      return { status: 200, contentType, frames, body: undefined };
    },
    respond: (requestId, body, as) =>
      fetch(url(`respond/${bridgeId}/${requestId}`), {
        method: 'POST',
        headers: auth(as),
        body,
        duplex: 'half',
      } as RequestInit),
    heartbeat: (messages = [], as) =>
      fetch(url(`heartbeat/${bridgeId}`), {
        method: 'POST',
        headers: { ...auth(as), 'content-type': 'application/json' },
        body: JSON.stringify({ messages }),
      }),
    keepAlive() {
      const timer = setInterval(() => void desktop.heartbeat().catch(() => undefined), 200);
      return () => clearInterval(timer);
    },
  };
  return desktop;
}

/** Polls until `count` requests arrived; returns them by path. */
async function collectRequests(desktop: HandDesktop, count: number): Promise<Map<string, Extract<ControlMessage, { type: 'http_request' }>>> {
  const requests = new Map<string, Extract<ControlMessage, { type: 'http_request' }>>();
  while (requests.size < count) {
    const { frames } = await desktop.poll();
    for (const frame of frames) {
      if (frame.kind === 'control' && frame.message.type === 'http_request') requests.set(frame.message.path, frame.message);
    }
  }
  return requests;
}

/** A head record and raw body, as the bridge streams an answer. */
function answer(status: number, body: string, headers: Record<string, string> = { 'content-type': 'text/plain' }): Buffer {
  return Buffer.concat([encodeResponseHead({ status, headers }), Buffer.from(body)]);
}

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

async function health(layout: Layout, userId: string): Promise<{ connected: boolean; transport: string | null; activeRequests: number }> {
  return (await (await layout.fetchAs(userId, '/health')).json()) as { connected: boolean; transport: string | null; activeRequests: number };
}

describe('long-poll transport: a request nobody collects', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({ transport: 'poll', env: { REQUEST_TIMEOUT_MS: '600', BRIDGE_POLL_TIMEOUT_MS: '500' } });
  });
  afterAll(() => layout?.close());

  it('answers 504 when no poll collects the request within REQUEST_TIMEOUT_MS, and withdraws it from the queue', async () => {
    const desktop = await handDesktop(layout, 'tess');
    const stop = desktop.keepAlive();
    try {
      const res = await layout.fetchAs('tess', '/api/tags');
      expect(res.status).toBe(504);
      expect(await res.json()).toEqual({ error: { code: 'desktop_timeout', message: 'the desktop did not answer within 600 ms' } });
      // The request never reached the desktop, so the desktop never hears of it: the next poll is empty.
      expect((await desktop.poll()).status).toBe(204);
    } finally {
      stop();
    }
  });
});

describe('long-poll transport', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({
      transport: 'poll',
      env: { REQUEST_TIMEOUT_MS: '20000', BRIDGE_GRACE_MS: '1000', BRIDGE_MAX_QUEUE: '2', BRIDGE_POLL_TIMEOUT_MS: '5000' },
      llm: { tokenDelayMs: 20, tokens: 25 },
    });
  });
  afterAll(() => layout?.close());

  it('delivers a queued request to the waiting poll at once', async () => {
    const desktop = await handDesktop(layout, 'paula');
    let settled = false;
    const polled = desktop.poll().finally(() => (settled = true));
    // Long enough for the poll to reach the relay and wait there; nothing is queued yet.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(settled).toBe(false);
    const web = layout.fetchAs('paula', '/api/tags?x=1');
    const { status, contentType, frames } = await polled;
    expect(status).toBe(200);
    expect(contentType).toBe(POLL_BATCH_CONTENT_TYPE);
    const request = frames.find((frame) => frame.kind === 'control' && frame.message.type === 'http_request');
    expect(request?.kind === 'control' && request.message).toMatchObject({ type: 'http_request', method: 'GET', path: '/api/tags?x=1', end: true });
    const id = request?.kind === 'control' && request.message.type === 'http_request' ? request.message.id : '';
    const respond = await desktop.respond(id, answer(200, '{"models":[]}', { 'content-type': 'application/json' }));
    expect(respond.status).toBe(200);
    const res = await web;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ models: [] });
  });

  it('answers 503 queue_full once the bridge has BRIDGE_MAX_QUEUE requests waiting, and frees the slots of abandoned ones', async () => {
    const desktop = await handDesktop(layout, 'quinn');
    const stop = desktop.keepAlive();
    const callers = [new AbortController(), new AbortController()];
    try {
      const waiting = callers.map((caller) => layout.fetchAs('quinn', '/api/tags', { signal: caller.signal }).catch(() => undefined));
      await waitFor(async () => (await health(layout, 'quinn')).activeRequests === 2, 5000, 'two queued requests');
      const refused = await layout.fetchAs('quinn', '/api/tags');
      expect(refused.status).toBe(503);
      expect(await refused.json()).toEqual({
        error: { code: 'queue_full', message: 'your desktop is not collecting requests fast enough: its queue is full' },
      });
      for (const caller of callers) caller.abort();
      await Promise.all(waiting);
      await waitFor(async () => (await health(layout, 'quinn')).activeRequests === 0, 5000, 'the abandoned requests to go');
      // Their slots are free again: a new request is queued, not refused.
      const next = new AbortController();
      const queued = layout.fetchAs('quinn', '/api/tags', { signal: next.signal }).catch(() => undefined);
      await waitFor(async () => (await health(layout, 'quinn')).activeRequests === 1, 5000, 'a queued request');
      next.abort();
      await queued;
    } finally {
      stop();
    }
  });

  it('drops a bridge that stops polling and heartbeating after BRIDGE_GRACE_MS, failing its waiting requests at once', async () => {
    const desktop = await handDesktop(layout, 'gus');
    const began = Date.now();
    const results = await Promise.all([layout.fetchAs('gus', '/api/tags'), layout.fetchAs('gus', '/api/chat', { method: 'POST', body: '{}' })]);
    for (const res of results) {
      expect(res.status).toBe(503);
      expect(await errorCode(res)).toBe('desktop_disconnected');
    }
    // Dropped after the 1 s grace, not left waiting for the 20 s REQUEST_TIMEOUT_MS.
    expect(Date.now() - began).toBeLessThan(10_000);
    const late = await desktop.poll();
    expect(late.status).toBe(404);
    expect(late.body).toMatchObject({ error: { code: 'unknown_bridge' } });
    expect(await health(layout, 'gus')).toMatchObject({ connected: false });
  });

  it('fails what an earlier registration of the same bridge held as soon as it registers again', async () => {
    const before = await handDesktop(layout, 'olga');
    const stop = before.keepAlive();
    try {
      const waiting = layout.fetchAs('olga', '/api/tags');
      await waitFor(async () => (await health(layout, 'olga')).activeRequests === 1, 5000, 'a queued request');
      await handDesktop(layout, 'olga'); // the same clientId: the bridge lost its registration and made a new one
      const res = await waiting;
      expect(res.status).toBe(503);
      expect(await errorCode(res)).toBe('desktop_disconnected');
      expect((await before.poll()).status).toBe(404);
    } finally {
      stop();
    }
  });

  it("answers 404 to a second user guessing another's bridge id, on poll, respond and heartbeat", async () => {
    const desktop = await handDesktop(layout, 'alice');
    const stop = desktop.keepAlive();
    try {
      const guessedPoll = await desktop.poll('mallory');
      expect(guessedPoll).toMatchObject({ status: 404, body: { error: { code: 'unknown_bridge' } } });
      const guessedRespond = await desktop.respond(`${desktop.bridgeId}.0`, answer(200, 'forged'), 'mallory');
      expect(guessedRespond.status).toBe(404);
      const guessedHeartbeat = await desktop.heartbeat([], 'mallory');
      expect(guessedHeartbeat.status).toBe(404);
      // The owner is undisturbed.
      expect((await desktop.heartbeat()).status).toBe(200);
    } finally {
      stop();
    }
  });

  it('answers 400 to malformed answers, failing only their own streams', async () => {
    await layout.connectBridge('erin');
    const erinChat = layout.fetchAs('erin', '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) }).then(async (res) => ({
      status: res.status,
      lines: (await res.text()).trim().split('\n'),
    }));

    const desktop = await handDesktop(layout, 'dave');
    const stop = desktop.keepAlive();
    try {
      // Two requests at a time: the queue holds two.
      const goodWeb = layout.fetchAs('dave', '/good');
      const badWeb = layout.fetchAs('dave', '/not-json');
      const first = await collectRequests(desktop, 2);

      // The good answer starts streaming and stays open while the bad ones arrive.
      let push!: (chunk: Buffer | null) => void;
      const goodBody = new ReadableStream<Uint8Array>({
        start(controller) {
          push = (chunk) => (chunk ? controller.enqueue(chunk) : controller.close());
        },
      });
      const goodRespond = desktop.respond(first.get('/good')!.id, goodBody);
      push(answer(200, 'hello '));

      const notJson = await desktop.respond(first.get('/not-json')!.id, Buffer.concat([recordHeader(8), Buffer.from('not json')]));
      expect(notJson.status).toBe(400);
      expect(await errorCode(notJson)).toBe('malformed_answer');
      expect((await badWeb).status).toBe(502);

      const badStatusWeb = layout.fetchAs('dave', '/bad-status');
      const hugeRecordWeb = layout.fetchAs('dave', '/huge-record');
      const second = await collectRequests(desktop, 2);
      const impossibleHead = Buffer.from('{"status":1000,"headers":{}}');
      const badStatus = await desktop.respond(second.get('/bad-status')!.id, Buffer.concat([recordHeader(impossibleHead.byteLength), impossibleHead]));
      expect(badStatus.status).toBe(400);
      const hugeRecord = await desktop.respond(second.get('/huge-record')!.id, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7b]));
      expect(hugeRecord.status).toBe(400);
      expect((await badStatusWeb).status).toBe(502);
      expect((await hugeRecordWeb).status).toBe(502);

      const truncatedWeb = layout.fetchAs('dave', '/truncated');
      const [truncated] = (await collectRequests(desktop, 1)).values();
      const cut = await desktop.respond(truncated.id, Buffer.concat([recordHeader(100), Buffer.from('{"status":')]));
      expect(cut.status).toBe(400);
      expect((await truncatedWeb).status).toBe(502);

      const unknown = await desktop.respond(`${desktop.bridgeId}.zz`, answer(200, 'nobody asked'));
      expect(unknown.status).toBe(404);
      expect(await errorCode(unknown)).toBe('unknown_request');

      // Nothing was lost for the answer that was streaming all along, nor for another user.
      push(Buffer.from('world'));
      push(null);
      expect((await goodRespond).status).toBe(200);
      const good = await goodWeb;
      expect(good.status).toBe(200);
      expect(await good.text()).toBe('hello world');
      const erin = await erinChat;
      expect(erin.status).toBe(200);
      expect(erin.lines).toHaveLength(26);
      expect(JSON.parse(erin.lines[25])).toMatchObject({ done: true });
    } finally {
      stop();
    }
  });

  it('re-registers by itself when the relay forgets the bridge', async () => {
    const bridge = await layout.connectBridge('rita');
    expect((await layout.fetchAs('rita', '/api/tags')).status).toBe(200);
    const stopped = await fetch(`${layout.relay.url}/api/proxy/stop`, { method: 'POST', headers: { authorization: `Bearer ${layout.token('rita')}` } });
    expect(stopped.status).toBeLessThan(300);
    await waitFor(async () => (await layout.fetchAs('rita', '/api/tags')).status === 200, 15_000, 'the bridge to register again');
    expect(bridge.transport).toBe('poll');
  });

  it('reports transport poll in the health check, and ws while a WebSocket is connected too', async () => {
    await layout.connectBridge('hank', { transport: 'poll' });
    expect(await health(layout, 'hank')).toMatchObject({ connected: true, transport: 'poll' });
    const ws = await layout.connectBridge('hank', { transport: 'ws' });
    expect(await health(layout, 'hank')).toMatchObject({ connected: true, transport: 'ws' });
    await ws.close();
    await waitFor(async () => (await health(layout, 'hank')).transport === 'poll', 5000, 'polling to take over again');
    expect((await layout.fetchAs('hank', '/api/tags')).status).toBe(200);
  });

  describe('behind a proxy that blocks WebSockets', () => {
    let filter: WebSocketFilter;
    const bridges: Bridge[] = [];

    beforeAll(async () => {
      filter = await startWebSocketFilter(new URL(layout.relay.url));
    });
    afterEach(async () => {
      await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
    });
    afterAll(() => filter?.close());

    it('falls back to polling, then returns to the WebSocket once it gets through', async () => {
      filter.blockUpgrades = true;
      const notices: string[] = [];
      const bridge = startBridge({
        server: filter.url,
        token: layout.token('fern'),
        target: layout.llm.url,
        wsRetryMs: 300,
        backoff: { stepsMs: [100], jitter: 0 },
        onNotice: (message) => notices.push(message),
      });
      bridges.push(bridge);
      await bridge.waitConnected(10_000);
      expect(bridge.transport).toBe('poll');
      expect(notices[0]).toMatch(/^WebSockets seem to be blocked on this network \(the relay refused the tunnel: 403 Forbidden\): using HTTP long-polling/);
      expect(await health(layout, 'fern')).toMatchObject({ connected: true, transport: 'poll' });
      const chat = await layout.fetchAs('fern', '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [], options: { num_predict: 5 } }) });
      expect((await chat.text()).trim().split('\n')).toHaveLength(6);

      filter.blockUpgrades = false;
      await waitFor(() => bridge.transport === 'ws', 10_000, 'the bridge to return to the WebSocket');
      expect(bridge.connected).toBe(true);
      expect(notices).toContain('WebSocket gets through again: switched back from long-polling');
      expect(await health(layout, 'fern')).toMatchObject({ connected: true, transport: 'ws' });
      expect((await layout.fetchAs('fern', '/api/tags')).status).toBe(200);
    });

    it('stays on the WebSocket and keeps retrying with --no-fallback', async () => {
      filter.blockUpgrades = true;
      const bridge = startBridge({
        server: filter.url,
        token: layout.token('fern'),
        target: layout.llm.url,
        fallback: false,
        backoff: { stepsMs: [50], jitter: 0 },
      });
      bridges.push(bridge);
      await expect(bridge.waitConnected(1000)).rejects.toThrow(/the relay refused the tunnel: 403 Forbidden/);
      expect(bridge.transport).toBe('ws');
      expect(filter.refusedUpgrades).toBeGreaterThanOrEqual(2);
    });
  });
});

interface WebSocketFilter {
  url: string;
  /** While true, every WebSocket upgrade gets a block page; plain requests always pass. */
  blockUpgrades: boolean;
  refusedUpgrades: number;
  close(): Promise<void>;
}

/** A corporate proxy in miniature: passes plain HTTP to the relay, and may refuse WebSocket upgrades. */
async function startWebSocketFilter(relay: URL): Promise<WebSocketFilter> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const upstream = http.request({ host: relay.hostname, port: relay.port, method: req.method, path: req.url, headers: req.headers });
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  const filter: WebSocketFilter = {
    url: '',
    blockUpgrades: true,
    refusedUpgrades: 0,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    if (filter.blockUpgrades) {
      filter.refusedUpgrades += 1;
      const page = '<html><body>WebSockets are not allowed by your network policy</body></html>';
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/html\r\ncontent-length: ${page.length}\r\nconnection: close\r\n\r\n${page}`);
      return;
    }
    const upstream = net.connect(Number(relay.port), relay.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  filter.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return filter;
}
