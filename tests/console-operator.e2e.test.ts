/**
 * The console's Operator page in a real browser (Debian's Chromium through playwright-core)
 * against a real relay with ADMIN_CLAIM=roles=ctll-admin and real bridges: an operator signs in
 * with a token of the relay's dev issuer carrying the role, sees every proxy by owner hash, the
 * desktops and the chart, and stops a proxy after confirming; a user without the role never sees
 * the page, not even at its address. axe-core finds no serious violation on it. And a user's own
 * usage on My PC: the requests they made through their tunnel, counted today and charted per minute.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { userHash } from '../api-backend/src/proxy/naming';
import { startLayout, type Layout } from './helpers/layout';
import { launchChromium, screenshot, seriousAxeViolations } from './helpers/browser';

jest.setTimeout(60_000);

let layout: Layout;
let browser: Browser;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  layout = await startLayout({ env: { ADMIN_CLAIM: 'roles=ctll-admin' } });
  browser = await launchChromium();
});

beforeEach(async () => {
  context = await browser.newContext({ viewport: { width: 1024, height: 720 } });
  page = await context.newPage();
});

afterEach(() => context?.close());

afterAll(async () => {
  await browser?.close();
  await layout?.close();
});

const tokenWith = (sub: string, claims: object = {}) => layout.token(sub, claims);

/** Signs in on the dev sign-in page by pasting a token, as a person with a token from elsewhere would. */
async function signInWith(token: string, userId: string): Promise<void> {
  const asked = page.waitForResponse((response) => new URL(response.url()).pathname === '/api/me');
  await page.goto(`${layout.relay.url}/`);
  await page.locator('#dev-token').fill(token);
  await page.getByRole('button', { name: 'Use token' }).click();
  await page.locator('#who-user', { hasText: userId }).waitFor();
  expect((await asked).status()).toBe(200);
}

test('a signed-in user without the operator role sees no Operator page, not even at its address', async () => {
  await signInWith(tokenWith('alice', { roles: ['viewer'] }), 'alice');
  await page.locator('#pc-state').waitFor();
  expect(await page.locator('nav a').allInnerTexts()).not.toContain('Operator');
  await page.evaluate("location.hash = '#/operator'");
  await page.waitForURL(/#\/operator$/);
  await page.locator('#page-title', { hasText: 'My PC' }).waitFor();
  expect(await page.locator('#operator-proxies').count()).toBe(0);
});

test('an operator sees every proxy by owner hash, the desktops and the chart, and stops one after confirming', async () => {
  await layout.connectBridge('alice', { transport: 'ws' });
  // bob's bridge goes away again: his proxy stays (idle), and nothing restarts it once stopped.
  const bobsBridge = await layout.connectBridge('bob', { transport: 'poll' });
  await bobsBridge.close();
  const alice = userHash('alice');
  const bob = userHash('bob');

  await signInWith(tokenWith('olga', { roles: ['ctll-admin'] }), 'olga');
  await page.getByRole('link', { name: 'Operator' }).click();
  await page.locator(`#operator-proxies tr[data-owner="${alice}"]`).waitFor();
  await page.locator(`#operator-proxies tr[data-owner="${bob}"]`).waitFor();
  await page.locator('#operator-summary', { hasText: '1 WebSocket' }).waitFor();
  expect(await page.locator('#operator-summary').innerText()).toContain('2 of 200');
  expect(await page.locator(`#operator-proxies tr[data-owner="${alice}"]`).innerText()).toContain('ws');
  expect(await page.locator('#operator-chart svg path.chart-line, #operator-chart svg circle').count()).toBeGreaterThan(0);
  // Owner hashes only: the page never names a user.
  expect(await page.locator('main').innerText()).not.toMatch(/alice|bob/);
  await screenshot(page, 'operator');
  expect(await seriousAxeViolations(page)).toEqual([]);

  // Cancelling the confirmation stops nothing.
  page.once('dialog', (dialog) => void dialog.dismiss());
  await page.getByRole('button', { name: `Stop the proxy of ${bob}` }).click();
  expect((await layout.relay.manager.status('bob')).status).toBe('running');

  page.once('dialog', (dialog) => void dialog.accept());
  await page.getByRole('button', { name: `Stop the proxy of ${bob}` }).click();
  await page.locator('#operator-status', { hasText: `Stopped the proxy of ${bob}.` }).waitFor();
  await page.locator(`#operator-proxies tr[data-owner="${bob}"]`).waitFor({ state: 'detached' });
  expect((await layout.relay.manager.status('bob')).status).toBe('not-found');
  expect((await layout.relay.manager.status('alice')).status).toBe('running');
});

test("My PC shows the user's requests and bytes today, counted by their proxy, and charts them per minute", async () => {
  await layout.connectBridge('carol');
  let answered = 0;
  for (let i = 0; i < 3; i += 1) {
    const res = await layout.fetchAs('carol', '/api/tags');
    expect(res.status).toBe(200);
    answered += Buffer.byteLength(await res.text());
  }
  await signInWith(tokenWith('carol'), 'carol');
  await page.locator('#usage-today', { hasText: 'Requests today' }).waitFor();
  const today = await page.locator('#usage-today').innerText();
  expect(today).toMatch(/Requests today\s+3\b/);
  expect(today).toContain(`${answered} B from your PC`);
  expect(await page.locator('#usage-chart svg').count()).toBe(2);
  await screenshot(page, 'my-pc-usage');
  expect(await seriousAxeViolations(page)).toEqual([]);
});
