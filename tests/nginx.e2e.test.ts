/**
 * The relay behind a real nginx configured from nginx/relay.conf.template, as in production: TLS
 * with a self-signed certificate, the HTTP→HTTPS redirect and ACME webroot, the desktop's WebSocket
 * tunnel (a real `ctll-bridge` process that trusts the certificate through NODE_EXTRA_CA_CERTS, as a
 * user with a private CA would run it), streamed answers that must reach the web client token by
 * token, the long-poll transport, the body limit and the forwarding headers.
 *
 * Needs Debian's nginx (scripts/ci/provision-nginx.sh). Without it the suite is skipped with one
 * line, unless CTLL_REQUIRE_NGINX=1 makes that a failure.
 */
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  decodeFrame,
  encodeResponseHead,
  POLL_BATCH_CONTENT_TYPE,
  POLL_RESPONSE_CONTENT_TYPE,
  RecordReader,
  type ControlMessage,
} from '@ctll/protocol';
import { BRIDGE_CLI, startBridgeCli, type BridgeProcess } from './helpers/bridge-cli';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { describeWithNginx, linesWithArrival, nginxRequest, startNginx, TEST_DOMAIN, type Nginx, type RequestOptions } from './helpers/nginx';

const TOKEN_DELAY_MS = 150;
const NGINX_MAX_BODY = 1024 * 1024;
const RELAY_MAX_BODY = 8 * 1024 * 1024;

describeWithNginx('relay behind nginx (TLS, WebSocket tunnel, unbuffered streaming)', () => {
  let layout: Layout;
  let nginx: Nginx;
  let bridge: BridgeProcess | undefined;
  const alice = 'alice@example.com';

  beforeAll(async () => {
    if (!fs.existsSync(BRIDGE_CLI)) throw new Error(`${BRIDGE_CLI} is missing: run npm run build`);
    layout = await startLayout({ llm: { tokenDelayMs: TOKEN_DELAY_MS, tokens: 12 }, env: { MAX_BODY_BYTES: String(RELAY_MAX_BODY) } });
    nginx = await startNginx({ upstream: `127.0.0.1:${layout.relay.port}`, maxBodyBytes: NGINX_MAX_BODY });
    bridge = startBridgeCli(nginx, layout.token(alice), layout.llm.url);
    await waitFor(
      async () => (await get(`/api/tunnel/${encodeURIComponent(alice)}/health`, alice)).json<{ connected: boolean }>().connected,
      15_000,
      'the bridge to connect through nginx',
    ).catch((error: Error) => {
      throw new Error(`${error.message}\nbridge output:\n${bridge?.output()}\nnginx error log:\n${nginx.errorLog()}`);
    });
  }, 60_000);

  afterAll(async () => {
    await bridge?.stop();
    await nginx?.close();
    await layout?.close();
  });

  const auth = (userId: string) => ({ authorization: `Bearer ${layout.token(userId)}` });
  const request = (pathname: string, options: RequestOptions = {}) => nginxRequest(`${nginx.url}${pathname}`, { ca: nginx.ca, ...options });
  const get = (pathname: string, userId: string, headers: Record<string, string> = {}) =>
    request(pathname, { headers: { ...auth(userId), ...headers } });
  const tunnel = (userId: string, rest: string) => `/api/tunnel/${encodeURIComponent(userId)}${rest}`;

  it('answers /health over TLS 1.2 or newer, with HSTS and no version in the Server header', async () => {
    const res = await request('/health');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok' });
    expect(['TLSv1.2', 'TLSv1.3']).toContain(res.tlsVersion);
    expect(res.headers['strict-transport-security']).toMatch(/max-age=\d{7,}/);
    expect(res.headers.server).toBe('nginx');
  });

  it('shows the internet only "ok" on /health, and never the metrics or health details', async () => {
    expect((await request('/health')).json()).toEqual({ status: 'ok' });
    for (const pathname of ['/metrics', '/metrics?x=1', '/health/details']) {
      const res = await request(pathname);
      expect(res.status).toBe(404);
      expect(res.json()).toMatchObject({ error: { code: 'not_found' } });
      expect(res.text()).not.toContain('ctll_');
    }
    // They exist, on the relay's private port that nginx does not proxy.
    expect(await (await fetch(`${layout.relay.metricsUrl}/metrics`)).text()).toContain('ctll_http_requests_total');
  });

  it('redirects plain HTTP to HTTPS, but serves ACME challenges on HTTP', async () => {
    const redirect = await nginxRequest(`${nginx.httpUrl}${tunnel(alice, '/api/tags')}?verbose=1`);
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe(`https://${TEST_DOMAIN}${tunnel(alice, '/api/tags')}?verbose=1`);

    fs.writeFileSync(path.join(nginx.acmeChallengeDir, 'tok-8Hq2'), 'tok-8Hq2.account-thumbprint', { mode: 0o644 });
    const challenge = await nginxRequest(`${nginx.httpUrl}/.well-known/acme-challenge/tok-8Hq2`);
    expect(challenge.status).toBe(200);
    expect(challenge.text()).toBe('tok-8Hq2.account-thumbprint');
    expect((await nginxRequest(`${nginx.httpUrl}/.well-known/acme-challenge/unknown`)).status).toBe(404);
  });

  it('carries the WebSocket tunnel: a ctll-bridge connected through nginx serves requests', async () => {
    const health = await get(tunnel(alice, '/health'), alice);
    expect(health.json()).toMatchObject({ connected: true, transport: 'ws' });
    const tags = await get(tunnel(alice, '/api/tags'), alice);
    expect(tags.status).toBe(200);
    expect(tags.json<{ models: Array<{ name: string }> }>().models.map((m) => m.name)).toEqual(['test-model:latest']);
  });

  it('passes a refused upgrade through as JSON 401, and keeps ?token= out of the access log', async () => {
    const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${nginx.httpsPort}/ws/tunnel?token=not-a-jwt-QUERYSECRET`, { ca: nginx.ca });
      ws.on('open', () => reject(new Error('the upgrade was accepted with a bad token')));
      ws.on('error', reject);
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
    });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
    await waitFor(() => /"GET \/ws\/tunnel HTTP\/1\.1" 401 /.test(nginx.accessLog()), 2000, 'the access log line');
    expect(nginx.accessLog()).not.toContain('QUERYSECRET');
  });

  it('streams a chat token by token: chunks arrive spread over the generation, not in one burst', async () => {
    const tokens = 12;
    const res = await request(tunnel(alice, '/api/chat'), {
      method: 'POST',
      headers: { ...auth(alice), 'content-type': 'application/json', 'x-test-id': 'nginx-chat' },
      body: JSON.stringify({ model: 'test-model', stream: true, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: tokens } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const lines = linesWithArrival(res.chunks);
    const frames = lines.map((l) => JSON.parse(l.line) as { message: { content: string }; done: boolean });
    expect(frames.map((f) => f.message.content).join('')).toBe(Array.from({ length: tokens }, (_, i) => `tok${i} `).join(''));
    expect(frames[frames.length - 1].done).toBe(true);
    expectSpreadOut(lines.slice(0, tokens), layout.llm.finishedAt.get('nginx-chat')!, tokens);
    expect(res.chunks.length).toBeGreaterThanOrEqual(tokens - 2);
  });

  it('streams /API/TUNNEL/... (upper case, the same route to api-backend) token by token too, not buffered', async () => {
    const tokens = 12;
    const res = await request(`/API/TUNNEL/${encodeURIComponent(alice)}/api/chat`, {
      method: 'POST',
      headers: { ...auth(alice), 'content-type': 'application/json', 'x-test-id': 'nginx-chat-upper' },
      body: JSON.stringify({ model: 'test-model', stream: true, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: tokens } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const lines = linesWithArrival(res.chunks);
    expect(lines).toHaveLength(tokens + 1);
    expectSpreadOut(lines.slice(0, tokens), layout.llm.finishedAt.get('nginx-chat-upper')!, tokens);
  });

  it('streams OpenAI-compatible server-sent events as they are written', async () => {
    const tokens = 10;
    const res = await request(tunnel(alice, '/v1/chat/completions'), {
      method: 'POST',
      headers: { ...auth(alice), 'content-type': 'application/json', 'x-test-id': 'nginx-sse' },
      body: JSON.stringify({ model: 'test-model', stream: true, max_tokens: tokens, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const events = linesWithArrival(res.chunks).filter((l) => l.line.startsWith('data: '));
    expect(events).toHaveLength(tokens + 1);
    expect(events[tokens].line).toBe('data: [DONE]');
    expectSpreadOut(events.slice(0, tokens), layout.llm.finishedAt.get('nginx-sse')!, tokens);
  });

  it('carries the long-poll transport: the poll returns when a request is queued, and a streamed answer is not buffered either way', async () => {
    // A hand-rolled polling desktop (protocol/README.md), so nginx sees exactly the requests a
    // polling bridge makes: register, a waiting poll, then one chunked POST with the answer.
    const bob = 'bob';
    const registered = await request('/api/bridge/register', {
      method: 'POST',
      headers: { ...auth(bob), 'content-type': 'application/json' },
      body: '{}',
    });
    expect(registered.status).toBe(201);
    const { bridgeId, pollTimeoutMs } = registered.json<{ bridgeId: string; pollTimeoutMs: number }>();

    const pollStarted = Date.now();
    const poll = get(`/api/bridge/poll/${bridgeId}`, bob);
    await sleep(500);
    const web = get(tunnel(bob, '/story?part=1'), bob);
    const batch = await poll;
    expect(batch.status).toBe(200);
    expect(Date.now() - pollStarted).toBeLessThan(pollTimeoutMs);
    expect(batch.headers['content-type']).toBe(POLL_BATCH_CONTENT_TYPE);
    const records = new RecordReader().push(batch.body);
    if (!records.ok) throw new Error(records.error);
    const messages = records.value
      .map(decodeFrame)
      .flatMap((frame) => (frame.ok && frame.value.kind === 'control' ? [frame.value.message] : []));
    const asked = messages.find((m): m is Extract<ControlMessage, { type: 'http_request' }> => m.type === 'http_request');
    expect(asked).toMatchObject({ method: 'GET', path: '/story?part=1' });

    // The answer trickles up in one chunked POST; the desktop's X-Accel-Buffering header must not
    // turn nginx's buffering back on.
    const lines = 10;
    const writtenAt: number[] = [];
    const respond = request(`/api/bridge/respond/${bridgeId}/${asked!.id}`, {
      method: 'POST',
      headers: { ...auth(bob), 'content-type': POLL_RESPONSE_CONTENT_TYPE, 'transfer-encoding': 'chunked' },
      body: async (req) => {
        req.write(encodeResponseHead({ status: 200, headers: { 'content-type': 'text/plain', 'x-accel-buffering': 'yes' } }));
        for (let i = 0; i < lines; i++) {
          writtenAt.push(Date.now());
          req.write(`line ${i}\n`);
          await sleep(TOKEN_DELAY_MS);
        }
        req.end();
      },
    });
    const [answer, responded] = await Promise.all([web, respond]);
    expect(responded.status).toBeLessThan(300);
    expect(answer.status).toBe(200);
    const arrived = linesWithArrival(answer.chunks);
    expect(arrived.map((l) => l.line)).toEqual(Array.from({ length: lines }, (_, i) => `line ${i}`));
    // Each line reaches the web client before the desktop writes the next one.
    const onTime = arrived.slice(0, -1).filter((l, i) => l.at < writtenAt[i + 1] + 50).length;
    expect(onTime).toBeGreaterThanOrEqual(lines - 3);
  });

  it('takes bodies up to the limit, and answers a larger one with its own JSON 413 before api-backend sees it', async () => {
    const small = Buffer.alloc(NGINX_MAX_BODY - 1024, 7);
    const hashed = await request(tunnel(alice, '/sha256'), {
      method: 'POST',
      headers: { ...auth(alice), 'content-type': 'application/octet-stream' },
      body: small,
    });
    expect(hashed.status).toBe(200);
    expect(hashed.json()).toMatchObject({ bytes: small.byteLength });

    const large = await request(tunnel(alice, '/sha256'), {
      method: 'POST',
      headers: { ...auth(alice), 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(NGINX_MAX_BODY + 1, 7),
    });
    expect(large.status).toBe(413);
    expect(large.json()).toEqual({
      error: { code: 'payload_too_large', message: `request body exceeds the relay limit of ${NGINX_MAX_BODY} bytes` },
    });
  });

  it('keeps the caller address headers nginx adds away from the desktop', async () => {
    const res = await get(tunnel(alice, '/headers'), alice, { 'x-forwarded-for': '203.0.113.7' });
    expect(res.status).toBe(200);
    const seen = res.json<{ headers: Record<string, string> }>().headers;
    expect(seen).not.toHaveProperty('x-forwarded-for');
    expect(seen).not.toHaveProperty('x-real-ip');
    expect(seen).not.toHaveProperty('authorization');
  });

  describe('against other upstreams', () => {
    it('sets X-Forwarded-For (appended), X-Real-IP, X-Forwarded-Proto and Host for the upstream', async () => {
      // The test LLM server echoes the headers it receives, so it shows what api-backend is sent.
      const echo = await startNginx({ upstream: `127.0.0.1:${layout.llm.port}` });
      try {
        const res = await nginxRequest(`${echo.url}/headers`, { ca: echo.ca, headers: { 'x-forwarded-for': '203.0.113.7' } });
        expect(res.status).toBe(200);
        expect(res.json<{ headers: Record<string, string> }>().headers).toMatchObject({
          'x-forwarded-for': '203.0.113.7, 127.0.0.1',
          'x-real-ip': '127.0.0.1',
          'x-forwarded-proto': 'https',
          host: '127.0.0.1',
        });
      } finally {
        await echo.close();
      }
    });

    it('answers JSON 503 when api-backend is unreachable', async () => {
      const down = await startNginx({ upstream: '127.0.0.1:9' });
      try {
        const res = await nginxRequest(`${down.url}/health`, { ca: down.ca });
        expect(res.status).toBe(503);
        expect(res.json()).toMatchObject({ error: { code: 'unavailable' } });
      } finally {
        await down.close();
      }
    });
  });
});

/**
 * Tokens written `TOKEN_DELAY_MS` apart must arrive that way: the first well before the model
 * finished, most before it finished, and the gaps between arrivals close to the gaps between
 * writes (a buffering hop delivers them in one or two bursts with gaps near zero).
 */
function expectSpreadOut(arrivals: Array<{ at: number }>, finishedAt: number, tokens: number): void {
  expect(arrivals).toHaveLength(tokens);
  const generation = tokens * TOKEN_DELAY_MS;
  expect(finishedAt - arrivals[0].at).toBeGreaterThan(generation / 2);
  expect(arrivals.filter((a) => a.at <= finishedAt).length).toBeGreaterThanOrEqual(tokens - 2);
  const gaps = arrivals.slice(1).map((a, i) => a.at - arrivals[i].at);
  const median = [...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)];
  expect(median).toBeGreaterThanOrEqual(TOKEN_DELAY_MS / 2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
