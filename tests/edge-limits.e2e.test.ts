/**
 * Per-client-address limits at the public edge: failed authentications, tunnel upgrade attempts
 * and /health, answered 429 with Retry-After and the error catalogue's JSON body.
 *
 * First on the embedded default (a real api-backend with no nginx in front), then through a real
 * nginx rendered from nginx/relay.conf.template. Each caller connects from its own loopback
 * address (127.0.0.x, all of which reach 127.0.0.1 on Linux), so one address going over a limit
 * can be shown not to touch another. Limits are set small through the environment.
 */
import http from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';
import { startLayout, type Layout } from './helpers/layout';
import { describeWithNginx, nginxRequest, startNginx, type Nginx, type NginxResponse } from './helpers/nginx';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request from `localAddress`, on a fresh connection. */
function requestFrom(localAddress: string, url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { localAddress, headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket handshake written on a raw socket from `localAddress`; resolves to everything the relay sent before closing. */
function rawUpgradeFrom(localAddress: string, port: number, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    let received = '';
    socket.setEncoding('utf8');
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer to the upgrade')));
    socket.on('connect', () =>
      socket.write(
        'GET /ws/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ZWRnZS1saW1pdHMtdGVzdA==\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      ),
    );
    socket.on('data', (chunk: string) => {
      received += chunk;
      // An accepted tunnel stays open: the status line is all we need then.
      if (received.startsWith('HTTP/1.1 101')) socket.destroy();
    });
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
}

/** Status, headers (lower-case names) and body of a raw HTTP answer. */
function parseRaw(raw: string): Answer {
  const [head, body = ''] = raw.split('\r\n\r\n');
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: http.IncomingHttpHeaders = {};
  for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

/** A 429 as the catalogue defines it: Retry-After in whole seconds within the one-minute window, JSON body. */
function expectRateLimited(answer: Answer, message: RegExp): void {
  expect(answer.status).toBe(429);
  const retryAfter = Number(answer.headers['retry-after']);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  expect(JSON.parse(answer.body)).toEqual({ error: { code: 'rate_limited', message: expect.stringMatching(message) } });
}

describe('per-address limits on api-backend alone (the embedded default)', () => {
  const AUTH_FAILURES = 5;
  const UPGRADES = 3;
  const HEALTH = 4;
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({
      env: {
        RATE_LIMIT_ENABLED: 'true',
        RATE_LIMIT_AUTH_FAILURES: String(AUTH_FAILURES),
        RATE_LIMIT_UPGRADES: String(UPGRADES),
        RATE_LIMIT_HEALTH: String(HEALTH),
      },
    });
  }, 60_000);
  afterAll(async () => {
    await layout?.close();
  });

  const api = (from: string, token: string, pathname = '/api/proxy/status') =>
    requestFrom(from, `${layout.relay.url}${pathname}`, { authorization: `Bearer ${token}` });

  it('refuses an address that keeps failing authentication with 429, even with a valid token, until its minute is over; other addresses carry on', async () => {
    const attacker = '127.0.0.2';
    for (let i = 0; i < AUTH_FAILURES; i++) expect((await api(attacker, 'not-a-jwt')).status).toBe(401);

    expectRateLimited(await api(attacker, 'not-a-jwt'), /failed authentications/);
    // The address is refused before any token is looked at: a valid one too, on every /api route.
    expectRateLimited(await api(attacker, layout.token('mallory')), /failed authentications/);
    expectRateLimited(await api(attacker, layout.token('mallory'), '/API/AUDIT/SESSIONS'), /failed authentications/);
    expectRateLimited(parseRaw(await rawUpgradeFrom(attacker, layout.relay.port, layout.token('mallory'))), /failed authentications/);

    const neighbour = '127.0.0.3';
    expect((await api(neighbour, layout.token('nora'))).status).toBe(200);
    expect((await api(neighbour, 'not-a-jwt')).status).toBe(401);
  });

  it('never limits a user with a valid token, however many requests they send', async () => {
    const home = '127.0.0.4';
    for (let i = 0; i < AUTH_FAILURES * 4; i++) {
      const answer = await api(home, layout.token('hana'));
      expect(answer.status).toBe(200);
    }
    // One mistyped token costs one failure, not the address.
    expect((await api(home, 'not-a-jwt')).status).toBe(401);
    expect((await api(home, layout.token('hana'))).status).toBe(200);
  });

  it('answers tunnel upgrade attempts past the limit with a raw 429 before any handshake, and starts no proxy', async () => {
    const dialler = '127.0.0.5';
    for (let i = 0; i < UPGRADES; i++) expect(await rawUpgradeFrom(dialler, layout.relay.port, 'not-a-jwt')).toMatch(/^HTTP\/1\.1 401 /);

    const raw = await rawUpgradeFrom(dialler, layout.relay.port, layout.token('dora'));
    expect(raw).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n/);
    expect(raw).not.toContain('101');
    expectRateLimited(parseRaw(raw), /tunnel connection attempts/);
    expect(JSON.parse((await api('127.0.0.6', layout.token('dora'))).body)).toMatchObject({ status: 'not-found' });

    // Three failed upgrades are below the failed-authentication limit: the address's API calls still get their 401.
    expect((await api(dialler, 'not-a-jwt')).status).toBe(401);
  });

  it('answers /health past the limit with 429 from that address only', async () => {
    const monitor = '127.0.0.7';
    for (let i = 0; i < HEALTH; i++) expect((await requestFrom(monitor, `${layout.relay.url}/health`)).status).toBe(200);
    expectRateLimited(await requestFrom(monitor, `${layout.relay.url}/health`), /health checks/);
    expectRateLimited(await requestFrom(monitor, `${layout.relay.url}/HEALTH/`), /health checks/);
    expect((await requestFrom('127.0.0.8', `${layout.relay.url}/health`)).status).toBe(200);
  });
});

describe('RATE_LIMIT_ENABLED=false', () => {
  let layout: Layout;
  beforeAll(async () => {
    layout = await startLayout({ env: { RATE_LIMIT_ENABLED: 'false', RATE_LIMIT_AUTH_FAILURES: '1', RATE_LIMIT_UPGRADES: '1', RATE_LIMIT_HEALTH: '1' } });
  }, 60_000);
  afterAll(async () => {
    await layout?.close();
  });

  it('turns the per-address limits off', async () => {
    const from = '127.0.0.2';
    for (let i = 0; i < 3; i++) {
      expect((await requestFrom(from, `${layout.relay.url}/api/proxy/status`, { authorization: 'Bearer not-a-jwt' })).status).toBe(401);
      expect(await rawUpgradeFrom(from, layout.relay.port, 'not-a-jwt')).toMatch(/^HTTP\/1\.1 401 /);
      expect((await requestFrom(from, `${layout.relay.url}/health`)).status).toBe(200);
    }
  });
});

describeWithNginx('per-address limits through nginx', () => {
  // nginx lets an address send a burst of its per-minute rate at once on top of the first request.
  const NGINX_LIMIT = 3;
  const NGINX_ALLOWED = NGINX_LIMIT + 1;
  const RELAY_AUTH_FAILURES = 6;
  let layout: Layout;
  let nginx: Nginx;

  beforeAll(async () => {
    // api-backend trusts nginx's X-Forwarded-For (TRUST_PROXY=loopback) and keeps its own failure count.
    layout = await startLayout({
      env: { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_AUTH_FAILURES: String(RELAY_AUTH_FAILURES), RATE_LIMIT_UPGRADES: '1000', RATE_LIMIT_HEALTH: '1000' },
    });
    nginx = await startNginx({
      upstream: `127.0.0.1:${layout.relay.port}`,
      rateLimits: { authFailures: NGINX_LIMIT, upgrades: NGINX_LIMIT, health: NGINX_LIMIT },
    });
  }, 60_000);
  afterAll(async () => {
    await nginx?.close();
    await layout?.close();
  });

  const viaNginx = (from: string, pathname: string, headers: Record<string, string> = {}) =>
    nginxRequest(`${nginx.url}${pathname}`, { ca: nginx.ca, localAddress: from, headers });
  const answer = (res: NginxResponse): Answer => ({ status: res.status, headers: res.headers, body: res.text() });

  /** A WebSocket upgrade through nginx from `localAddress`; resolves to the refusal (or fails if accepted). */
  const upgradeVia = (from: string, pathname: string, token: string) =>
    new Promise<Answer>((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${nginx.httpsPort}${pathname}`, { ca: nginx.ca, localAddress: from, headers: { authorization: `Bearer ${token}` } });
      ws.on('open', () => {
        ws.terminate();
        reject(new Error('the upgrade was accepted'));
      });
      ws.on('error', reject);
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
    });

  it('answers requests to /api without credentials past the limit itself: 429, Retry-After, the catalogue body, any letter case', async () => {
    const anonymous = '127.0.0.2';
    for (let i = 0; i < NGINX_ALLOWED; i++) expect((await viaNginx(anonymous, '/api/proxy/status')).status).toBe(401);

    const refused = answer(await viaNginx(anonymous, '/api/proxy/status'));
    expectRateLimited(refused, /too many requests/);
    expect(refused.headers['retry-after']).toBe('60');
    expect(refused.headers['strict-transport-security']).toMatch(/max-age=\d+/);
    expectRateLimited(answer(await viaNginx(anonymous, '/API/TUNNEL/someone/api/tags')), /too many requests/);

    // A request with a token is api-backend's to judge, from the same address.
    expect((await viaNginx(anonymous, '/api/proxy/status', { authorization: `Bearer ${layout.token('ann')}` })).status).toBe(200);
  });

  it("passes api-backend's own 429 for repeated invalid tokens through, counted per client address behind nginx", async () => {
    const guesser = '127.0.0.3';
    const bad = { authorization: 'Bearer not-a-jwt' };
    for (let i = 0; i < RELAY_AUTH_FAILURES; i++) expect((await viaNginx(guesser, '/api/proxy/status', bad)).status).toBe(401);
    expectRateLimited(answer(await viaNginx(guesser, '/api/proxy/status', bad)), /failed authentications/);
    // api-backend counted the guesser's address (X-Forwarded-For), not nginx's.
    expect((await viaNginx('127.0.0.4', '/api/proxy/status', bad)).status).toBe(401);
  });

  it('answers tunnel upgrade attempts past the limit with 429 and JSON before any handshake', async () => {
    const dialler = '127.0.0.5';
    for (let i = 0; i < NGINX_ALLOWED; i++) expect((await upgradeVia(dialler, '/ws/tunnel', 'not-a-jwt')).status).toBe(401);
    expectRateLimited(await upgradeVia(dialler, '/ws/tunnel', layout.token('dan')), /too many requests/);
    expectRateLimited(await upgradeVia(dialler, '/WS/Tunnel', layout.token('dan')), /too many requests/);
  });

  it('answers /health past the limit with 429 from that address only', async () => {
    const monitor = '127.0.0.6';
    for (let i = 0; i < NGINX_ALLOWED; i++) expect((await viaNginx(monitor, '/health')).status).toBe(200);
    expectRateLimited(answer(await viaNginx(monitor, '/health')), /too many requests/);
    expectRateLimited(answer(await viaNginx(monitor, '/Health/')), /too many requests/);
    expect((await viaNginx('127.0.0.7', '/health')).status).toBe(200);
  });
});
