/**
 * No answer the relay gives a caller names its internals: not the identity provider's issuer or
 * audience, not the database's URL, host or user, not the container engine's words, a container
 * id or a proxy's internal address, not a data directory. Those belong in the log, under the
 * request's id (every answer carries `X-Request-Id`).
 *
 * Two sources of error bodies are checked: the ones this file causes on purpose (each relay
 * failure a caller can meet: refused tokens, a database gone, a proxy that cannot start, an image
 * the engine does not have), and every error body the rest of the suite received, recorded by
 * tests/helpers/error-bodies.ts. The `.last` name makes the sequencer run this file after all
 * others; in CI the record must hold the whole run.
 */
import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { startLayout, type Layout } from './helpers/layout';
import { createTestDatabase, describeWithPostgres, postgres, TcpForwarder, viaPort, type TestDatabase } from './helpers/postgres';
import { describeDocker } from './docker/require-docker';
import { readErrorBodies, type RecordedBody } from './helpers/error-bodies';
import { DEV_AUDIENCE, DEV_ISSUER } from '../api-backend/src/config';

/** What must never appear in a body a caller reads, each with the reason it would matter. */
function forbiddenPatterns(): Array<[what: string, pattern: RegExp]> {
  const patterns: Array<[string, RegExp]> = [
    ['the expected issuer', new RegExp(escape(DEV_ISSUER))],
    ['the expected audience', new RegExp(escape(DEV_AUDIENCE))],
    ["the token library's verdict with expected values", /jwt (issuer|audience) invalid|expected: /i],
    ['a database URL', /postgres(ql)?:\/\//i],
    ["the database driver's words", /password authentication failed|for user "|no pg_hba|database "[^"]+" does not exist/i],
    ["the container engine's words", /\(HTTP code \d{3}\)|no such (container|image|network)|Docker engine unreachable|docker\.sock|DOCKER_HOST/i],
    ['a container id', /\b[0-9a-f]{64}\b/],
    ["an address on a proxy's network", /\b10\.2\d\d\.\d{1,3}\.\d{1,3}\b/],
    ["the relay's data directory", /ctll-e2e-|pglite|dev-auth/i],
    ['a stack trace', /\n\s+at .+\(.+:\d+:\d+\)/],
    ['a file of the relay', /\/(api-backend|streaming-proxy)\/(dist|src)\//],
  ];
  if (postgres.url) {
    const url = new URL(postgres.url);
    if (url.username) patterns.push(['the database user', new RegExp(`\\b${escape(decodeURIComponent(url.username))}@|"${escape(decodeURIComponent(url.username))}"`)]);
    patterns.push(["the database's host and port", new RegExp(escape(`${url.hostname}:${url.port || '5432'}`))]);
  }
  return patterns;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function leaks(bodies: RecordedBody[]): string[] {
  const patterns = forbiddenPatterns();
  const found: string[] = [];
  for (const body of bodies) {
    for (const [what, pattern] of patterns) {
      if (pattern.test(body.body)) found.push(`${body.method} ${body.url} → ${body.status}: ${what} in ${body.body.slice(0, 300)}`);
    }
  }
  return found;
}

/** Error bodies this file caused itself, checked at the end together with the suite's. */
const caused: RecordedBody[] = [];

async function capture(url: string, init: RequestInit = {}): Promise<{ status: number; body: string; requestId: string | null }> {
  const res = await fetch(url, init);
  const body = await res.text();
  if (res.status >= 400) caused.push({ method: init.method ?? 'GET', url, status: res.status, body });
  return { status: res.status, body, requestId: res.headers.get('x-request-id') };
}

describe('error bodies: refused tokens and a proxy that cannot start', () => {
  let layout: Layout;

  beforeAll(async () => {
    // A proxy program that does not exist: every start fails, as a broken install would.
    layout = await startLayout({ env: { PROXY_SCRIPT: '/nonexistent/streaming-proxy.js', PROXY_START_TIMEOUT_MS: '3000' } });
  });
  afterAll(async () => {
    await layout?.close();
  });

  it('refuses tokens with the wrong issuer, audience or key without naming what it expected', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const sign = (claims: object, options: jwt.SignOptions, key: jwt.Secret = other.privateKey) =>
      jwt.sign(claims, key, { algorithm: 'RS256', expiresIn: 600, ...options });
    const tokens = [
      sign({ sub: 'eve' }, { issuer: 'https://evil.example/', audience: DEV_AUDIENCE }),
      sign({ sub: 'eve' }, { issuer: DEV_ISSUER, audience: 'someone-else' }),
      'not-a-jwt',
      jwt.sign({ sub: 'eve' }, 'shared-secret', { algorithm: 'HS256', issuer: DEV_ISSUER, audience: DEV_AUDIENCE }),
    ];
    for (const token of tokens) {
      const answer = await capture(`${layout.relay.url}/api/proxy/status`, { headers: { authorization: `Bearer ${token}` } });
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'unauthorized' } });
      expect(answer.requestId).toMatch(/^[A-Za-z0-9._-]{8,}$/);
    }
  });

  it('answers a failed proxy start with a code and a request id, not the program path or its error', async () => {
    const answer = await capture(`${layout.relay.url}/api/proxy/start`, {
      method: 'POST',
      headers: { authorization: `Bearer ${layout.token('alice')}` },
    });
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'proxy_start_failed' } });
    expect(answer.body).not.toContain('/nonexistent/');
    expect(answer.body).not.toMatch(/ENOENT|Cannot find module/);
    expect(answer.requestId).toBeTruthy();
  });

  it('keeps a request id a trusted hop sent, and replaces one from anywhere else only when it is unsafe', async () => {
    // The relay trusts loopback (TRUST_PROXY's default), which is where this test calls from.
    const kept = await capture(`${layout.relay.url}/api/nothing-here`, { headers: { 'x-request-id': 'nginx-req-0123456789' } });
    expect(kept.status).toBe(401);
    expect(kept.requestId).toBe('nginx-req-0123456789');
    const replaced = await capture(`${layout.relay.url}/api/nothing-here`, { headers: { 'x-request-id': 'bad id\twith spaces' } });
    expect(replaced.requestId).not.toContain(' ');
  });
});

describeWithPostgres('error bodies: the audit database gone', () => {
  let layout: Layout;
  let database: TestDatabase;
  let forwarder: TcpForwarder;

  beforeAll(async () => {
    database = await createTestDatabase();
    forwarder = await TcpForwarder.to(database.url).start();
    layout = await startLayout({ env: { DATABASE_URL: viaPort(database.url, forwarder.port) } });
  }, 120_000);
  afterAll(async () => {
    await layout?.close();
    await forwarder?.close();
    await database?.drop();
  });

  it("answers 503 without the database's URL, host, user or driver message", async () => {
    await forwarder.cut();
    const answer = await capture(`${layout.relay.url}/api/audit/sessions`, { headers: { authorization: `Bearer ${layout.token('alice')}` } });
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'database_unavailable' } });
    expect(answer.body).not.toContain(String(forwarder.port));
    await forwarder.restore();
  });
});

describeDocker('error bodies: an image the engine does not have', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({ driver: 'docker', env: { PROXY_IMAGE: 'ctll/no-such-proxy-image:never' } });
  }, 120_000);
  afterAll(async () => {
    await layout?.close();
  });

  it("answers 503 with a code, not the engine's message or the image it looked for", async () => {
    const answer = await capture(`${layout.relay.url}/api/proxy/start`, {
      method: 'POST',
      headers: { authorization: `Bearer ${layout.token('alice')}` },
    });
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'proxy_image_missing' } });
    expect(answer.body).not.toContain('no-such-proxy-image');
  });
});

describe('error bodies: the whole suite', () => {
  it('finds none of the relay internals in any error body this file or the suite received', async () => {
    // A moment for the last recorded copies (read on the side) to reach the file.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const recorded = readErrorBodies();
    if (process.env.CI === 'true') {
      // In CI this file runs after every other suite: the record must hold a whole run's errors.
      expect(recorded.length).toBeGreaterThan(200);
      expect(new Set(recorded.map((body) => body.status)).size).toBeGreaterThanOrEqual(8);
    }
    const all = [...caused, ...recorded];
    expect(caused.length).toBeGreaterThanOrEqual(6);
    expect(leaks(all)).toEqual([]);
  });

  it('would notice a leak: the check finds each kind of internal in a planted body', () => {
    const planted = [
      `{"error":{"code":"unauthorized","message":"jwt issuer invalid. expected: ${DEV_ISSUER}"}}`,
      '{"error":{"code":"docker_error","message":"Docker could not create: (HTTP code 404) no such image"}}',
      '{"error":{"code":"proxy_unreachable","message":"connect ECONNREFUSED 10.200.0.18:8080"}}',
      `{"error":{"code":"x","message":"${'ab'.repeat(32)}"}}`,
      '{"error":{"code":"database_unavailable","message":"cannot reach postgres://ctll@db:5432/ctll"}}',
    ].map((body) => ({ method: 'GET', url: 'planted', status: 503, body }));
    for (const body of planted) expect(leaks([body])).not.toEqual([]);
  });
});
