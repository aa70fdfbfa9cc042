/**
 * Browser apps on other origins, as a browser meets the relay: the CORS preflight it sends before a
 * cross-origin request (no credentials), then the request itself. A relay with CORS_ORIGINS set
 * answers its allowed origins' preflights without a token and lets them read every answer; other
 * origins, and every origin on a relay without the setting, get no CORS header at all. Runs on the
 * embedded PGlite, where a browser app's `call` key is made and used too.
 */
import { loadConfig } from '../api-backend/src/config';
import { PROXY_SCRIPT, startLayout, type Layout } from './helpers/layout';

const APP = 'https://app.example.com';
const DEV_APP = 'http://localhost:5173';
const STRANGER = 'https://evil.example.net';

describe('browser apps (CORS_ORIGINS)', () => {
  let open: Layout;
  let closed: Layout;
  const user = 'alice';

  beforeAll(async () => {
    [open, closed] = await Promise.all([
      startLayout({ env: { CORS_ORIGINS: `${APP}, ${DEV_APP}` }, llm: { tokenDelayMs: 5, tokens: 4 } }),
      startLayout({ llm: { tokenDelayMs: 5, tokens: 4 } }),
    ]);
    await open.connectBridge(user);
  }, 60_000);
  afterAll(() => Promise.all([open?.close(), closed?.close()]), 30_000);

  /** What a browser sends before a POST with a JSON body and a bearer token. */
  const preflight = (layout: Layout, origin: string) =>
    fetch(`${layout.tunnelUrl(user)}/api/chat`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
  const corsHeaders = (res: Response) => [...res.headers.keys()].filter((name) => name.startsWith('access-control-'));

  it.each([APP, DEV_APP])('answers a preflight from the allowed origin %s without a token', async (origin) => {
    const res = await preflight(open, origin);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(origin);
    expect(res.headers.get('access-control-allow-methods')?.split(',')).toEqual(expect.arrayContaining(['GET', 'POST', 'DELETE']));
    expect(res.headers.get('access-control-allow-headers')?.split(',')).toEqual(['Authorization', 'Content-Type']);
    expect(res.headers.get('access-control-max-age')).toBe('7200');
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(res.headers.get('vary')).toMatch(/origin/i);
  });

  it('gives an origin not on the list no CORS headers: its preflight is an ordinary request without a token', async () => {
    const res = await preflight(open, STRANGER);
    expect(corsHeaders(res)).toEqual([]);
    expect(res.status).toBe(401);
  });

  it('allows no origin at all by default', async () => {
    for (const origin of [APP, STRANGER]) {
      const res = await preflight(closed, origin);
      expect(corsHeaders(res)).toEqual([]);
      expect(res.status).toBe(401);
    }
  });

  it("lets an allowed app read the answers, errors included, and the model's answer with a call key", async () => {
    const tags = await fetch(`${open.tunnelUrl(user)}/api/tags`, { headers: { origin: APP, authorization: `Bearer ${open.token(user)}` } });
    expect(tags.status).toBe(200);
    expect(tags.headers.get('access-control-allow-origin')).toBe(APP);
    expect(tags.headers.get('access-control-expose-headers')).toContain('Retry-After');

    const refused = await fetch(`${open.tunnelUrl(user)}/api/tags`, { headers: { origin: APP } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(APP);

    // The app's own key, made by the user with their token (on the embedded database).
    const made = await fetch(`${open.relay.url}/api/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${open.token(user)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'web app', scope: 'call' }),
    });
    expect(made.status).toBe(201);
    const { key } = (await made.json()) as { key: string };
    const chat = await fetch(`${open.tunnelUrl(user)}/api/chat`, {
      method: 'POST',
      headers: { origin: APP, authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }], stream: false }),
    });
    expect(chat.status).toBe(200);
    expect(chat.headers.get('access-control-allow-origin')).toBe(APP);
    expect(((await chat.json()) as { message: { content: string } }).message.content).toBe('tok0 tok1 tok2 tok3 ');

    const stranger = await fetch(`${open.tunnelUrl(user)}/api/tags`, { headers: { origin: STRANGER, authorization: `Bearer ${key}` } });
    expect(stranger.status).toBe(200);
    expect(corsHeaders(stranger)).toEqual([]);
  });

  it('refuses a CORS_ORIGINS entry that is not an origin, naming the setting', () => {
    const load = (value: string) => loadConfig({ CORS_ORIGINS: value }, { proxyScript: PROXY_SCRIPT });
    expect(() => load('https://app.example.com/path')).toThrow(/CORS_ORIGINS=.*scheme, host and port only/);
    expect(() => load('app.example.com')).toThrow(/CORS_ORIGINS=.*not an origin/);
    expect(load(' https://App.Example.com/ ,*').corsOrigins).toEqual(['https://app.example.com', '*']);
    expect(load('').corsOrigins).toEqual([]);
  });
});
