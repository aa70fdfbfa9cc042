/**
 * Random requests to every route of a real relay (fast-check): any method, a route's path with
 * random segments, random headers, a random body, with alice's token, bob's, a broken one or none.
 * Whatever arrives, the relay answers with a status from its error catalogue and a JSON error body,
 * never a 500, never a hang; and carol's generation, streaming through the same relay meanwhile,
 * arrives whole and in order. CTLL_FUZZ_RUNS raises the number of requests.
 */
import fc from 'fast-check';
import { startLayout, readChunks, type Layout } from './helpers/layout';
import { FUZZ_SOCKET_RUNS } from './helpers/fuzz';

/** What the relay may answer to anything (README's error table, and the successes). */
const TOKENS = 1500;

const ALLOWED_STATUSES = new Set([200, 201, 204, 400, 401, 403, 404, 405, 413, 415, 429, 502, 503, 504]);

const ROUTES = [
  '/api/proxy/start',
  '/api/proxy/stop',
  '/api/proxy/status',
  '/api/bridge/register',
  '/api/bridge/poll/{x}',
  '/api/bridge/respond/{x}/{x}',
  '/api/bridge/heartbeat/{x}',
  '/api/tunnel/{user}/{x}',
  '/api/tunnel/{user}/health',
  '/api/audit/sessions',
  '/api/keys',
  '/api/keys/{x}',
  '/api/me',
  '/api/me/usage',
  '/api/admin/overview',
  '/api/admin/proxies/{x}/stop',
  '/api/zrok/register',
  '/api/zrok/discover',
  '/api/zrok/discover/{user}',
  '/api/zrok/heartbeat',
  '/api/zrok/unregister',
  '/api/zrok/health/{x}',
  '/api/renewals/{x}',
  '/health',
  '/.well-known/jwks.json',
  '/{x}',
];

describe('random requests to every route', () => {
  let layout: Layout;

  beforeAll(async () => {
    // A request that waits for a desktop (alice may have registered a polling bridge that never
    // polls) is answered after REQUEST_TIMEOUT_MS: short here, so the fuzz never waits long.
    layout = await startLayout({
      env: { REQUEST_TIMEOUT_MS: '2000', BRIDGE_POLL_TIMEOUT_MS: '1000', BRIDGE_GRACE_MS: '2000' },
      llm: { tokens: TOKENS, tokenDelayMs: 10 },
    });
    await layout.connectBridge('carol');
  });
  afterAll(async () => {
    await layout?.close();
  });

  it('answers each with a catalogue status and a JSON error, while another user streams undisturbed', async () => {
    const carols = layout.fetchAs('carol', '/api/generate', { method: 'POST', body: JSON.stringify({ model: 'test', prompt: 'hi' }) });

    const segment = fc.oneof(
      fc.constantFrom('alice', 'bob', 'x', '..', '%2e%2e', '%2F..', '%00', '%ff', 'a'.repeat(300)),
      fc.stringMatching(/^[A-Za-z0-9._~%-]{1,24}$/),
    );
    const request = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
      route: fc.constantFrom(...ROUTES),
      segments: fc.array(segment, { minLength: 3, maxLength: 3 }),
      query: fc.option(fc.stringMatching(/^[A-Za-z0-9=&%._-]{0,40}$/), { nil: undefined }),
      caller: fc.constantFrom('alice', 'bob', 'broken', 'made-up key', 'none'),
      contentType: fc.constantFrom(undefined, 'application/json', 'text/plain', 'application/vnd.ctll.frames', 'multipart/form-data'),
      body: fc.oneof(
        fc.constant(undefined),
        fc.json().map((text) => Buffer.from(text)),
        fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes)),
      ),
    });

    await fc.assert(
      fc.asyncProperty(request, async ({ method, route, segments, query, caller, contentType, body }) => {
        let n = 0;
        const path = route.replace(/\{(user|x)\}/g, (_all, kind: string) => (kind === 'user' ? (caller === 'bob' ? 'bob' : 'alice') : segments[n++ % 3]));
        const headers: Record<string, string> = {};
        if (caller === 'alice' || caller === 'bob') headers.authorization = `Bearer ${layout.token(caller)}`;
        if (caller === 'broken') headers.authorization = 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.AAAA';
        if (caller === 'made-up key') headers.authorization = `Bearer ctll_${'A'.repeat(43)}`;
        if (contentType) headers['content-type'] = contentType;
        const withBody = body !== undefined && method !== 'GET' && method !== 'HEAD';
        const res = await fetch(`${layout.relay.url}${path}${query === undefined ? '' : `?${query}`}`, {
          method,
          headers,
          body: withBody ? body : undefined,
          signal: AbortSignal.timeout(20_000),
        });
        const text = await res.text();
        // Neither alice nor bob has a desktop: everything they get is the relay's own answer.
        expect({ path, status: res.status, allowed: ALLOWED_STATUSES.has(res.status) }).toEqual({ path, status: res.status, allowed: true });
        if (res.status >= 400 && method !== 'HEAD') {
          const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
          expect(typeof parsed.error?.code).toBe('string');
          expect(typeof parsed.error?.message).toBe('string');
        }
      }),
      { numRuns: FUZZ_SOCKET_RUNS },
    );

    const answer = await carols;
    expect(answer.status).toBe(200);
    const lines = (await readChunks(answer))
      .map((chunk) => chunk.text)
      .join('')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as { response: string; done: boolean });
    expect(lines).toHaveLength(TOKENS + 1);
    expect(lines.slice(0, TOKENS).map((line) => line.response)).toEqual(Array.from({ length: TOKENS }, (_, i) => `tok${i} `));
    expect(lines[TOKENS]).toMatchObject({ done: true });
  }, 300_000);
});
