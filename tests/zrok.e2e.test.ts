/**
 * zrok shares end to end: a second Ollama-compatible server on 127.0.0.1 plays the
 * user's zrok share (the relay runs with ZROK_ALLOW_INSECURE=true so plain http and loopback are
 * allowed), the real relay and per-user proxy forward to it when no tunnel is connected, and a
 * real bridge takes over when it connects. Registration safety without the dev setting is in
 * zrok-validation.e2e.test.ts.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Ollama } from 'ollama';
import { startLayout, readChunks, waitFor, type Layout } from './helpers/layout';
import { startLlmServer, type LlmServer } from './helpers/llm-server';
import { TRANSPORTS } from './helpers/matrix';
import { userHash } from '../api-backend/src/proxy/naming';
import { ZrokShare } from '../bridge/src/zrok';

const BRIDGE_CLI = path.resolve(__dirname, '../bridge/dist/cli.js');
/**
 * Shares beat every TTL_MS / 3. The shares the tests keep alive must survive a heartbeat delayed
 * under load (the registry is in Postgres: a beat is a database round trip), so the TTL leaves
 * seconds of slack; the tests that need a share to expire or to outlive its first TTL wait for what
 * the relay reports, not for a fixed time.
 */
const TTL_MS = 6_000;
/** Requests at once per user (USER_MAX_STREAMS), low enough to reach through the share. */
const MAX_STREAMS = 3;

interface ShareAnswer {
  tunnelId: string;
  publicUrl: string;
  localUrl?: string | null;
  shareToken?: string | null;
  heartbeatIntervalMs?: number;
  reachable?: boolean | null;
  inUse?: boolean;
  expiresAt?: string;
}

function api(layout: Layout, userId: string | null, method: string, pathname: string, body?: unknown, headers: Record<string, string> = {}) {
  return fetch(`${layout.relay.url}${pathname}`, {
    method,
    headers: {
      ...(userId ? { authorization: `Bearer ${layout.token(userId)}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const register = (layout: Layout, userId: string, publicUrl: string, extra: Record<string, string> = {}) =>
  api(layout, userId, 'POST', '/api/zrok/register', { tunnelInfo: { publicUrl, ...extra } });

async function discover(layout: Layout, userId: string): Promise<ShareAnswer[]> {
  const res = await api(layout, userId, 'GET', '/api/zrok/discover');
  expect(res.status).toBe(200);
  return ((await res.json()) as { tunnels: ShareAnswer[] }).tunnels;
}

async function tunnelHealth(layout: Layout, userId: string): Promise<{ connected: boolean; transport: string | null }> {
  return (await layout.fetchAs(userId, '/health')).json() as Promise<{ connected: boolean; transport: string | null }>;
}

async function proxySecret(layout: Layout, userId: string): Promise<string> {
  const handle = await layout.relay.manager.driver.inspect(userHash(userId));
  if (!handle?.endpoint) throw new Error(`no proxy runs for ${userId}`);
  return handle.endpoint.secret;
}

describe('zrok shares (ZROK_ALLOW_INSECURE=true)', () => {
  let layout: Layout;
  let share: LlmServer;
  const keepAlive: ZrokShare[] = [];
  let zoesShare: ZrokShare;

  /** Registers the test share for the user through the bridge's own registration code, heartbeating. */
  async function offerShare(userId: string): Promise<ZrokShare> {
    const offered = new ZrokShare({ server: layout.relay.url, token: layout.token(userId), publicUrl: share.url, target: layout.llm.url }).start();
    keepAlive.push(offered);
    await waitFor(() => offered.tunnelId !== undefined, 10_000, 'the share to register');
    return offered;
  }

  beforeAll(async () => {
    share = await startLlmServer({ tokenDelayMs: 25, tokens: 12 });
    layout = await startLayout({
      env: {
        ZROK_ALLOW_INSECURE: 'true',
        // The test share is a server on 127.0.0.1: the operator's allow-list names it.
        ZROK_SHARE_DOMAINS: '127.0.0.1',
        ZROK_SHARE_TTL_MS: String(TTL_MS),
        ZROK_DISCOVERY_INTERVAL_MS: '200',
        REQUEST_TIMEOUT_MS: '1500',
        USER_MAX_STREAMS: String(MAX_STREAMS),
        // A polling bridge that leaves is noticed after the grace period: keep it short here.
        BRIDGE_POLL_TIMEOUT_MS: '1000',
        BRIDGE_GRACE_MS: '1500',
      },
      llm: { tokenDelayMs: 25, tokens: 12 },
    });
  });
  afterAll(async () => {
    await Promise.all(keepAlive.map((offered) => offered.close()));
    await layout?.close();
    await share?.close();
  });

  it('registers a share, says whether the relay reaches it, and re-registering keeps its id', async () => {
    const res = await register(layout, 'rita', `${share.url}/`, { localUrl: 'http://127.0.0.1:11434', shareToken: 'rita-share-token' });
    expect(res.status).toBe(201);
    const created = (await res.json()) as ShareAnswer;
    expect(created).toMatchObject({
      publicUrl: share.url,
      localUrl: 'http://127.0.0.1:11434',
      shareToken: 'rita-share-token',
      heartbeatIntervalMs: Math.floor(TTL_MS / 3),
      reachable: true,
      inUse: true,
    });
    expect(created.tunnelId).toMatch(/^zt[0-9a-f]{24}$/);
    const again = await register(layout, 'rita', share.url);
    expect(again.status).toBe(200);
    expect(((await again.json()) as ShareAnswer).tunnelId).toBe(created.tunnelId);
    expect((await api(layout, 'rita', 'DELETE', '/api/zrok/unregister', { tunnelId: created.tunnelId })).status).toBe(200);
  });

  it('says a share is unreachable without the low-level reason (no port scanning through registration)', async () => {
    // A port nothing listens on: the proxy's health check gets a refused connection.
    const closed = await startLlmServer();
    const closedUrl = closed.url;
    await closed.close();
    const res = await register(layout, 'ursula', closedUrl);
    expect(res.status).toBe(201);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ reachable: false, reachability: 'unreachable' });
    expect(text).not.toMatch(/ECONN|EHOST|ETIMEDOUT|refused|no answer within/i);
    const { tunnelId } = JSON.parse(text) as ShareAnswer;
    const health = await (await api(layout, 'ursula', 'GET', `/api/zrok/health/${tunnelId}`)).text();
    expect(JSON.parse(health)).toMatchObject({ status: 'registered', reachable: false, reachability: 'unreachable' });
    expect(health).not.toMatch(/ECONN|EHOST|ETIMEDOUT|refused|no answer within/i);
    expect((await api(layout, 'ursula', 'DELETE', '/api/zrok/unregister', { tunnelId })).status).toBe(200);
  });

  it('lists shares to their owner only, share token included', async () => {
    zoesShare = await offerShare('zoe');
    const own = await discover(layout, 'zoe');
    expect(own).toHaveLength(1);
    expect(own[0]).toMatchObject({ publicUrl: share.url, localUrl: layout.llm.url });
    expect(await discover(layout, 'bob')).toEqual([]);
  });

  it("refuses another user's discovery: user tokens, a missing or wrong proxy secret, another proxy's secret", async () => {
    const target = `/api/zrok/discover/${encodeURIComponent('zoe')}`;
    const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

    const bobToken = await api(layout, 'bob', 'GET', target);
    expect(bobToken.status).toBe(403);
    expect(await code(bobToken)).toBe('forbidden');
    expect((await api(layout, 'zoe', 'GET', target)).status).toBe(403); // not even the owner's token
    expect((await api(layout, null, 'GET', target)).status).toBe(401);
    expect((await api(layout, null, 'GET', target, undefined, { 'x-ctll-proxy-secret': randomBytes(32).toString('hex') })).status).toBe(401);

    expect((await api(layout, 'bob', 'POST', '/api/proxy/start')).status).toBeLessThan(300);
    const bobsSecret = await proxySecret(layout, 'bob');
    const crossed = await api(layout, null, 'GET', target, undefined, { 'x-ctll-proxy-secret': bobsSecret });
    expect(crossed.status).toBe(401);
    expect(await code(crossed)).toBe('unauthorized');
  });

  it("answers the user's own proxy, by user id or by hash, without the share token", async () => {
    const secret = await proxySecret(layout, 'zoe');
    for (const who of ['zoe', userHash('zoe')]) {
      const res = await api(layout, null, 'GET', `/api/zrok/discover/${who}`, undefined, { 'x-ctll-proxy-secret': secret });
      expect(res.status).toBe(200);
      const { tunnels } = (await res.json()) as { tunnels: ShareAnswer[] };
      expect(tunnels).toHaveLength(1);
      expect(tunnels[0].publicUrl).toBe(share.url);
      expect(tunnels[0]).not.toHaveProperty('shareToken');
      expect(tunnels[0]).not.toHaveProperty('localUrl');
    }
  });

  it('streams a chat through the share while no tunnel is connected', async () => {
    expect(await tunnelHealth(layout, 'zoe')).toMatchObject({ connected: true, transport: 'zrok' });
    const ollama = new Ollama({ host: layout.tunnelUrl('zoe'), headers: { authorization: `Bearer ${layout.token('zoe')}`, 'x-test-id': 'zrok-chat' } });
    const stream = await ollama.chat({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_predict: 20 } });
    const arrivals: Array<{ at: number; content: string }> = [];
    for await (const part of stream) arrivals.push({ at: Date.now(), content: part.message.content });
    expect(arrivals.map((a) => a.content).join('')).toBe(Array.from({ length: 20 }, (_, i) => `tok${i} `).join(''));
    const finished = share.finishedAt.get('zrok-chat')!;
    expect(finished).toBeDefined();
    expect(arrivals.filter((a) => a.at < finished).length).toBeGreaterThanOrEqual(15);
    expect(layout.llm.seen.some((seen) => seen.headers['x-test-id'] === 'zrok-chat')).toBe(false);
  });

  it('carries server-sent events and binary bodies both ways through the share', async () => {
    const sse = await layout.fetchAs('zoe', '/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-test-id': 'zrok-sse' },
      body: JSON.stringify({ model: 'test-model', stream: true, max_tokens: 10, messages: [] }),
    });
    expect(sse.headers.get('content-type')).toBe('text/event-stream');
    const chunks = await readChunks(sse);
    expect(chunks[0].at).toBeLessThan(share.finishedAt.get('zrok-sse')!);
    expect(chunks.map((c) => c.text).join('').match(/^data: /gm)?.length).toBe(11);

    const body = randomBytes(3 * 1024 * 1024 + 5);
    const echoed = await layout.fetchAs('zoe', '/echo', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    expect(Buffer.compare(Buffer.from(await echoed.arrayBuffer()), body)).toBe(0);
  });

  it("counts requests through the share, and their body bytes both ways, in the user's usage", async () => {
    type Today = { requests: number; bytesToDesktop: number; bytesFromDesktop: number };
    const today = async () => ((await (await api(layout, 'zoe', 'GET', '/api/me/usage')).json()) as { today: Today }).today;
    const before = await today();
    const body = randomBytes(200 * 1024 + 7);
    const echoed = await layout.fetchAs('zoe', '/echo', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream', 'x-test-id': 'zrok-usage' } });
    expect(Buffer.compare(Buffer.from(await echoed.arrayBuffer()), body)).toBe(0);
    expect(share.seen.some((seen) => seen.headers['x-test-id'] === 'zrok-usage')).toBe(true);
    const after = await today();
    expect(after.requests - before.requests).toBe(1);
    expect(after.bytesToDesktop - before.bytesToDesktop).toBe(body.byteLength);
    expect(after.bytesFromDesktop - before.bytesFromDesktop).toBe(body.byteLength);
  });

  it('keeps credentials, hop-by-hop and internal headers away from the share', async () => {
    const res = await layout.fetchAs('zoe', '/headers', { headers: { 'x-custom': 'kept', cookie: 'a=b', 'x-ctll-proxy-secret': 'guess' } });
    const { headers } = (await res.json()) as { headers: Record<string, string> };
    expect(headers['x-custom']).toBe('kept');
    expect(headers.authorization).toBeUndefined();
    expect(headers.cookie).toBeUndefined();
    expect(Object.keys(headers).filter((name) => name.startsWith('x-ctll'))).toEqual([]);
    expect(headers.host).toBe(`127.0.0.1:${share.port}`);
  });

  it("answers a named target's request (/t/<name>/...) with 503 target_needs_tunnel while only a share serves, and never passes it to the share", async () => {
    const offered = await offerShare('nora');
    try {
      await waitFor(async () => (await tunnelHealth(layout, 'nora')).transport === 'zrok', 10_000, "the share to serve nora's requests");
      for (const [pathname, name] of [['/t/lmstudio/v1/models', 'lmstudio'], ['/t/vllm?x=1', 'vllm']]) {
        const res = await layout.fetchAs('nora', pathname, { headers: { 'x-test-id': 'zrok-named-target' } });
        expect(res.status).toBe(503);
        const { error } = (await res.json()) as { error: { code: string; message: string } };
        expect(error.code).toBe('target_needs_tunnel');
        expect(error.message).toContain(`"${name}"`);
      }
      expect(share.seen.some((seen) => seen.headers['x-test-id'] === 'zrok-named-target')).toBe(false);
      // The default target is the share's, and is still served through it; so is a path that only looks alike.
      for (const pathname of ['/api/tags', '/tags']) {
        const res = await layout.fetchAs('nora', pathname, { headers: { 'x-test-id': `zrok-default${pathname}` } });
        expect(res.status).not.toBe(503);
        expect(share.seen.some((seen) => seen.headers['x-test-id'] === `zrok-default${pathname}` && seen.path === pathname)).toBe(true);
      }
    } finally {
      await offered.close();
    }
  });

  it('aborts the request to the share when the web client goes away', async () => {
    const controller = new AbortController();
    const res = await layout.fetchAs('zoe', '/api/chat', {
      method: 'POST',
      body: JSON.stringify({ model: 'test-model', messages: [], options: { num_predict: 400 } }),
      signal: controller.signal,
    });
    await res.body!.getReader().read();
    const aborted = share.nextAbort(5000);
    controller.abort();
    await expect(aborted).resolves.toBe('/api/chat');
  });

  it('holds requests through the share to USER_MAX_STREAMS: the one past it gets 429 too_many_streams', async () => {
    const controller = new AbortController();
    const chat = () =>
      layout.fetchAs('zoe', '/api/chat', {
        method: 'POST',
        body: JSON.stringify({ model: 'test-model', messages: [], options: { num_predict: 400 } }),
        signal: controller.signal,
      });
    try {
      const running = await Promise.all(Array.from({ length: MAX_STREAMS }, chat));
      expect(running.map((res) => res.status)).toEqual(Array(MAX_STREAMS).fill(200));
      const refused = await layout.fetchAs('zoe', '/api/tags');
      expect(refused.status).toBe(429);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('too_many_streams');
    } finally {
      controller.abort();
    }
    // The callers left: their slots are free again, and the share serves.
    await waitFor(async () => (await layout.fetchAs('zoe', '/api/tags')).status === 200, 5000, 'the slots to be freed');
  });

  it('ends a silent share with 504 after REQUEST_TIMEOUT_MS', async () => {
    const res = await layout.fetchAs('zoe', '/hang');
    expect(res.status).toBe(504);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('desktop_timeout');
  });

  it.each(TRANSPORTS)('switches to a %s tunnel as soon as a bridge connects, and back to the share when it leaves', async (transport) => {
    const bridge = await layout.connectBridge('zoe', { transport });
    expect(await tunnelHealth(layout, 'zoe')).toMatchObject({ connected: true, transport });
    const viaTunnel = await layout.fetchAs('zoe', '/api/tags', { headers: { 'x-test-id': `after-${transport}-bridge` } });
    expect(viaTunnel.status).toBe(200);
    expect(layout.llm.seen.some((seen) => seen.headers['x-test-id'] === `after-${transport}-bridge`)).toBe(true);
    expect(share.seen.some((seen) => seen.headers['x-test-id'] === `after-${transport}-bridge`)).toBe(false);

    await bridge.close();
    await waitFor(async () => (await tunnelHealth(layout, 'zoe')).transport === 'zrok', 10_000, 'the share to take over again');
    const viaShare = await layout.fetchAs('zoe', '/api/tags', { headers: { 'x-test-id': `after-${transport}-bridge-left` } });
    expect(viaShare.status).toBe(200);
    expect(share.seen.some((seen) => seen.headers['x-test-id'] === `after-${transport}-bridge-left`)).toBe(true);
  });

  it("reports a share's health to its owner only, and never forwards another user's requests to it", async () => {
    const [own] = await discover(layout, 'zoe');
    const health = await api(layout, 'zoe', 'GET', `/api/zrok/health/${own.tunnelId}`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ tunnelId: own.tunnelId, status: 'registered', proxy: 'running', reachable: true, inUse: true });
    expect((await api(layout, 'bob', 'GET', `/api/zrok/health/${own.tunnelId}`)).status).toBe(404);
    expect((await api(layout, 'bob', 'POST', '/api/zrok/heartbeat', { tunnelId: own.tunnelId })).status).toBe(404);
    expect((await api(layout, 'bob', 'DELETE', '/api/zrok/unregister', { tunnelId: own.tunnelId })).status).toBe(404);
    const bobs = await layout.fetchAs('bob', '/api/tags');
    expect(bobs.status).toBe(503);
    expect(((await bobs.json()) as { error: { code: string } }).error.code).toBe('desktop_offline');
  });

  it('stops using a share the moment it is unregistered', async () => {
    await zoesShare.close();
    expect(await discover(layout, 'zoe')).toEqual([]);
    const res = await layout.fetchAs('zoe', '/api/tags');
    expect(res.status).toBe(503);
    expect(await tunnelHealth(layout, 'zoe')).toMatchObject({ connected: false, transport: null });
  });

  it('expires a share whose heartbeats stop', async () => {
    const res = await register(layout, 'eve', share.url);
    const { tunnelId } = (await res.json()) as ShareAnswer;
    expect((await layout.fetchAs('eve', '/api/tags')).status).toBe(200);
    await waitFor(async () => (await discover(layout, 'eve')).length === 0, TTL_MS + 5000, 'the share to expire');
    await waitFor(async () => (await layout.fetchAs('eve', '/api/tags')).status === 503, 5000, 'the proxy to drop the share');
    expect((await api(layout, 'eve', 'GET', `/api/zrok/health/${tunnelId}`)).status).toBe(404);
    expect((await api(layout, 'eve', 'POST', '/api/zrok/heartbeat', { tunnelId })).status).toBe(404);
  });

  it('ctll-bridge --zrok-url registers the share, heartbeats it and unregisters it on exit', async () => {
    const child = spawn(
      process.execPath,
      [BRIDGE_CLI, '--server', layout.relay.url, '--token', layout.token('carl'), '--target', layout.llm.url, '--zrok-url', share.url, '--json-logs'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor(async () => (await discover(layout, 'carl')).length === 1, 10_000, 'the CLI to register its share');
      const [registered] = await discover(layout, 'carl');
      const firstExpiry = Date.parse(registered.expiresAt!);
      // Past the expiry its registration was given: only heartbeats keep it, under the same id.
      await waitFor(async () => Date.now() > firstExpiry + 200, TTL_MS + 1_000, 'the first expiry to pass');
      const [kept] = await discover(layout, 'carl');
      expect(kept).toMatchObject({ tunnelId: registered.tunnelId, publicUrl: share.url, localUrl: layout.llm.url });
      expect(Date.parse(kept.expiresAt!)).toBeGreaterThan(firstExpiry);
      expect(output).toContain('zrok share registered with the relay');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(await discover(layout, 'carl')).toEqual([]);
  });
});
