/**
 * The web console signing in through a real OpenID provider (oidc-provider, tests/helpers/
 * oidc-provider.ts) in a real browser: authorization code with PKCE as a public client, the access
 * token renewed in the background with the refresh token held in memory, and the console's pages
 * calling only the relay and the provider.
 */
import net from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { startLayout, type Layout } from './helpers/layout';
import { startOidcProvider, type OidcProvider } from './helpers/oidc-provider';
import { launchChromium, localContext, seriousAxeViolations } from './helpers/browser';

jest.setTimeout(60_000);

/** Short, so the background renewal happens within the test (at four fifths of it, at least 5 s in). */
const ACCESS_TOKEN_TTL_S = 8;

let provider: OidcProvider;
let layout: Layout;
let browser: Browser;
let page: Page;
const requested: string[] = [];
/** Relay answers that refused the console's token. */
const refused: string[] = [];

/** The provider must know the console's callback before the relay starts, so the relay's port is picked first. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  const port = await freePort();
  provider = await startOidcProvider({ accessTokenTtlS: ACCESS_TOKEN_TTL_S, webRedirectUris: [`http://127.0.0.1:${port}/`] });
  layout = await startLayout({ env: { ...provider.relayEnv, OIDC_WEB_CLIENT_ID: provider.webClientId, PORT: String(port) } });
  browser = await launchChromium();
  page = await (await localContext(browser)).newPage();
  // What the console's own pages ask for (the provider's sign-in pages are the provider's business).
  page.on('request', (request) => {
    if (new URL(request.frame().url()).origin === new URL(layout.relay.url).origin) requested.push(request.url());
  });
  page.on('response', (response) => {
    if (response.status() === 401) refused.push(response.url());
  });
});

afterAll(async () => {
  await browser?.close();
  await layout?.close();
  await provider?.close();
});

test('signs in at the identity provider and comes back signed in as that account', async () => {
  const response = await page.goto(`${layout.relay.url}/`);
  // Only the provider joins this origin among the places the page may call.
  expect(response!.headers()['content-security-policy']).toContain(`connect-src 'self' ${new URL(provider.issuer).origin}`);
  await page.locator('#sign-in-oidc').click();

  // oidc-provider's own sign-in and consent pages.
  await page.waitForURL((address) => address.origin === new URL(provider.issuer).origin);
  await page.locator('input[name="login"]').fill('alice');
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
  await page.locator('button[type="submit"]', { hasText: /continue|authorize/i }).click();

  await page.locator('#who-user', { hasText: 'alice' }).waitFor({ timeout: 15_000 });
  await page.locator('#pc-state', { hasText: 'Offline' }).waitFor();
  // The code and state are gone from the address bar, and nothing of the sign-in stays in storage.
  expect(new URL(page.url()).search).toBe('');
  expect(await page.evaluate<string[]>('[JSON.stringify(localStorage), JSON.stringify(sessionStorage)]')).toEqual(['{}', '{}']);
  expect(await seriousAxeViolations(page)).toEqual([]);
});

test('the access token is renewed in the background, and the pages keep working past its expiry', async () => {
  const renewal = await page.waitForRequest((request) => request.method() === 'POST' && request.url().startsWith(provider.issuer) && /grant_type=refresh_token/.test(request.postData() ?? ''), {
    timeout: ACCESS_TOKEN_TTL_S * 1000 + 5_000,
  });
  const renewed = await renewal.response();
  expect(renewed?.status()).toBe(200);
  const { access_token: renewedToken } = (await renewed!.json()) as { access_token: string };
  // The relay ends My PC's live status stream when the token that opened it expires; the console
  // opens it again, with the renewed token. The relay refused none of its calls, and the console
  // is still signed in.
  const reopened = await page.waitForResponse((res) => res.url().endsWith('/api/me/events') && res.status() === 200, { timeout: ACCESS_TOKEN_TTL_S * 1000 + 10_000 });
  expect(reopened.request().headers().authorization).toBe(`Bearer ${renewedToken}`);
  expect(refused).toEqual([]);
  expect(await page.locator('#who-user').innerText()).toBe('alice');
  expect(await page.locator('#sign-in-oidc').count()).toBe(0);
});

test('with a real identity provider the relay signs no dev token', async () => {
  const res = await fetch(`${layout.relay.url}/api/auth/dev-token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'alice' }) });
  // No such route here: like any unknown /api path, it first asks for a token.
  expect(res.status).toBe(401);
  expect(((await res.json()) as { token?: string }).token).toBeUndefined();
});

test("the console's pages called only the relay and the identity provider", () => {
  const allowed = new Set([new URL(layout.relay.url).origin, new URL(provider.issuer).origin]);
  expect(requested.some((address) => address.startsWith(provider.issuer))).toBe(true);
  expect(requested.filter((address) => !allowed.has(new URL(address).origin))).toEqual([]);
});
