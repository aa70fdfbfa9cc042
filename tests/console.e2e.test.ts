/**
 * The web console in a real browser (Debian's Chromium through playwright-core) against a real
 * relay, real bridges and the slow test LLM server: dev sign-in, My PC going from offline to
 * connected and back, a chat whose tokens appear one by one, Stop cancelling the generation on the
 * PC, a key made and revoked, the session history; on every page axe-core finds no serious
 * violation, and no request the pages make leaves the relay's origin.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Bridge } from '../bridge/src';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { launchChromium, localContext, screenshot, seriousAxeViolations } from './helpers/browser';
import { OLLAMA_TEST_VERSION } from './helpers/llm-server';
import { nginxMissing, NGINX_REQUIREMENT, startNginx } from './helpers/nginx';
import { testIf } from './helpers/requirement';

jest.setTimeout(60_000);

// One test goes through nginx, as production does; it needs Debian's nginx (CI requires it).

const TOKENS = 16;
let layout: Layout;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let bridge: Bridge | undefined;
const requested: string[] = [];

beforeAll(async () => {
  // Slow enough tokens that each one is a separate DOM update; a short audit pull so the session
  // history shows the tunnel session within a second or two.
  layout = await startLayout({ llm: { tokenDelayMs: 80, tokens: TOKENS }, env: { AUDIT_PULL_INTERVAL_MS: '300' } });
  browser = await launchChromium();
  context = await localContext(browser, { viewport: { width: 1024, height: 720 } });
  page = await context.newPage();
  page.on('request', (request) => requested.push(request.url()));
});

afterAll(async () => {
  await browser?.close();
  await bridge?.close();
  await layout?.close();
});

const url = (hash = '') => `${layout.relay.url}/${hash}`;
const text = (selector: string) => page.locator(selector).innerText();
/** Evaluates JavaScript in the page (text, since this program is type-checked without the DOM's types). */
const inBrowser = <T = unknown>(expression: string) => page.evaluate<T>(expression);

async function expectNoSeriousAxeViolations(): Promise<void> {
  expect(await seriousAxeViolations(page)).toEqual([]);
}

test('the console is served at / under a strict Content-Security-Policy', async () => {
  const response = await page.goto(url());
  expect(response?.status()).toBe(200);
  const csp = response!.headers()['content-security-policy'];
  expect(csp).toContain("default-src 'self'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).toContain("base-uri 'none'");
  expect(csp).not.toContain('unsafe-inline');
  // The browser enforces it: an inline script put into the page never runs.
  const ran = await inBrowser<boolean>(`(() => {
    const script = document.createElement('script');
    script.textContent = 'window.inlineRan = true';
    document.body.append(script);
    return window.inlineRan === true;
  })()`);
  expect(ran).toBe(false);
});

test('dev sign-in with the keyboard alone lands on My PC, which says the PC is offline', async () => {
  await page.goto(url());
  await page.locator('#dev-user').waitFor();
  await screenshot(page, 'sign-in');
  await expectNoSeriousAxeViolations();
  await page.locator('#dev-user').focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('alice');
  await page.keyboard.press('Enter');
  await page.locator('#who-user', { hasText: 'alice' }).waitFor();
  await page.locator('#pc-state', { hasText: 'Offline' }).waitFor();
  // The navigation is reachable by Tab and follows Enter.
  for (let i = 0; i < 10 && (await inBrowser<string>('document.activeElement?.textContent')) !== 'Chat'; i++) await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/chat$/);
});

test("dev sign-in hands no token to a browser that is not on the relay's machine", async () => {
  // Through a trusted proxy (TRUST_PROXY=loopback), for a client elsewhere on the network.
  const res = await fetch(`${layout.relay.url}/api/auth/dev-token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' },
    body: JSON.stringify({ userId: 'mallory' }),
  });
  expect(res.status).toBe(403);
  const body = (await res.json()) as { error: { code: string }; token?: string };
  expect(body.error.code).toBe('forbidden');
  expect(body.token).toBeUndefined();
});

test('My PC shows "Connected" when the bridge connects and "Offline" when it stops, without a reload', async () => {
  await page.goto(url('#/pc'));
  await page.locator('#pc-state', { hasText: 'Offline' }).waitFor();
  const loaded = await inBrowser<number>("performance.getEntriesByType('navigation').length");

  const first = await layout.connectBridge('alice');
  await page.locator('#pc-state', { hasText: 'Connected' }).waitFor({ timeout: 10_000 });
  await page.locator('dd', { hasText: `up: Ollama ${OLLAMA_TEST_VERSION}` }).waitFor({ timeout: 10_000 });
  expect(await text('main')).toContain('WebSocket');
  // The tunnel's own round trip, from the proxy's ping to the PC and back.
  await page.locator('dd', { hasText: /^[\d.]+ ms \(your relay proxy → your PC → back/ }).waitFor({ timeout: 10_000 });
  await screenshot(page, 'my-pc');
  await expectNoSeriousAxeViolations();

  await first.close();
  await page.locator('#pc-state', { hasText: 'Offline' }).waitFor({ timeout: 10_000 });
  // Same document all along: the page updated itself.
  expect(await inBrowser<number>("performance.getEntriesByType('navigation').length")).toBe(loaded);
  expect(await inBrowser<string>('location.hash')).toBe('#/pc');
  // Live from the relay's event stream, not by polling the health route.
  expect(requested.some((address) => new URL(address).pathname === '/api/me/events')).toBe(true);
  expect(requested.filter((address) => new URL(address).pathname.endsWith('/health'))).toEqual([]);
});

test('on a phone-sized screen My PC fits the width (no sideways scrolling)', async () => {
  bridge = await layout.connectBridge('alice');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(url('#/pc'));
  await page.locator('#pc-state', { hasText: 'Connected' }).waitFor();
  await page.locator('dd', { hasText: 'up: Ollama' }).waitFor({ timeout: 10_000 });
  expect(await inBrowser<boolean>('document.documentElement.scrollWidth <= document.documentElement.clientWidth')).toBe(true);
  await screenshot(page, 'my-pc-phone');
  await page.setViewportSize({ width: 1024, height: 720 });
});

/**
 * Sends a prompt on the Chat page and returns every text the answer showed, as the browser's DOM
 * changed, until the answer was complete.
 */
async function chatAndWatch(target: Page, prompt: string): Promise<string[]> {
  await target.locator('#chat-model option[value="test-model:latest"]').waitFor({ state: 'attached' });
  await target.evaluate(`(() => {
    const seen = (window.answerTexts = []);
    new MutationObserver(() => {
      const answers = document.querySelectorAll('#chat-transcript .message.assistant');
      const last = answers[answers.length - 1];
      if (last && seen[seen.length - 1] !== last.textContent) seen.push(last.textContent);
    }).observe(document.getElementById('chat-transcript'), { childList: true, subtree: true, characterData: true });
  })()`);
  await target.locator('#chat-prompt').fill(prompt);
  await target.locator('#chat-send').click();
  await target
    .locator('#chat-status', { hasText: 'Answer complete.' })
    .waitFor({ timeout: 20_000 })
    .catch(async (error: Error) => {
      // Say what the page showed instead: a failed answer's message, or how far the answer got.
      const status = await target.locator('#chat-status').textContent();
      const shown = await target.evaluate<string[]>('window.answerTexts');
      throw new Error(`${error.message}\nchat status: ${JSON.stringify(status)}; answer texts seen: ${JSON.stringify(shown)}`);
    });
  return target.evaluate<string[]>('window.answerTexts');
}

const FULL_ANSWER = Array.from({ length: TOKENS }, (_, i) => `tok${i} `).join('');

/** Several distinct partial answers were on screen before the last token arrived, each growing the one before. */
function expectTokenByToken(texts: string[]): void {
  expect(texts[texts.length - 1]).toBe(FULL_ANSWER);
  const beforeLast = texts.filter((t) => t.length > 0 && t !== FULL_ANSWER);
  expect(beforeLast.length).toBeGreaterThanOrEqual(5);
  for (let i = 1; i < beforeLast.length; i++) expect(beforeLast[i].startsWith(beforeLast[i - 1])).toBe(true);
  expect(FULL_ANSWER.startsWith(beforeLast[beforeLast.length - 1])).toBe(true);
}

test('chat: the answer appears token by token as the model on the PC generates it', async () => {
  await page.goto(url('#/chat'));
  expectTokenByToken(await chatAndWatch(page, 'Hello from the browser'));
  expect(await page.locator('#chat-transcript .message.assistant').last().textContent()).toBe(FULL_ANSWER);
  expect(layout.llm.seen.filter((r) => r.path === '/api/chat')).toHaveLength(1);
  await screenshot(page, 'chat');
  await expectNoSeriousAxeViolations();
});

testIf(NGINX_REQUIREMENT, nginxMissing(), 'through nginx (TLS) the console loads under its CSP, signs in and streams a chat token by token', async () => {
  const nginx = await startNginx({ upstream: `127.0.0.1:${layout.relay.port}` });
  // The test certificate is self-signed; nginx.e2e.test.ts checks TLS itself.
  const viaNginx = await localContext(browser, { ignoreHTTPSErrors: true });
  try {
    const tab = await viaNginx.newPage();
    const response = await tab.goto(`${nginx.url}/`);
    expect(response?.headers()['content-security-policy']).toContain("default-src 'self'");
    expect(response?.headers()['strict-transport-security']).toBeDefined();
    await tab.locator('#dev-user').fill('alice');
    await tab.locator('#dev-sign-in').click();
    await tab.locator('#pc-state', { hasText: 'Connected' }).waitFor();
    await tab.goto(`${nginx.url}/#/chat`);
    expectTokenByToken(await chatAndWatch(tab, 'Hello through nginx'));
  } finally {
    await viaNginx.close();
    await nginx.close();
  }
});

test('chat: Stop cancels the generation on the PC (the test server sees its request aborted)', async () => {
  await page.goto(url('#/chat'));
  await page.locator('#chat-model option[value="test-model:latest"]').waitFor({ state: 'attached' });
  const aborted = layout.llm.nextAbort(15_000);
  await page.locator('#chat-prompt').fill('Write something long');
  await page.locator('#chat-send').click();
  await page.locator('#chat-transcript .message.assistant', { hasText: 'tok1 ' }).last().waitFor();
  await page.locator('#chat-stop').click();
  expect(await aborted).toBe('/api/chat');
  await page.locator('#chat-status', { hasText: 'Stopped.' }).waitFor();
  expect(await page.locator('#chat-transcript .message.assistant').last().textContent()).not.toContain(`tok${TOKENS - 1} `);
  expect(await page.locator('#chat-send').isEnabled()).toBe(true);
});

test('keys: a key is shown once when made, works, and stops working when revoked', async () => {
  await page.goto(url('#/keys'));
  await page.locator('#key-list', { hasText: 'No keys.' }).waitFor();
  await page.locator('#key-name').fill('phone script');
  await page.locator('#key-scope').selectOption('call');
  await page.locator('#key-create').click();
  const key = (await page.locator('#key-secret').innerText()).trim();
  expect(key).toMatch(/^ctll_[A-Za-z0-9_-]{43}$/);
  await page.locator('#key-list', { hasText: 'phone script' }).waitFor();
  const withKey = () => fetch(`${layout.tunnelUrl('alice')}/api/tags`, { headers: { authorization: `Bearer ${key}` } });
  expect((await withKey()).status).toBe(200);
  await screenshot(page, 'keys');
  await expectNoSeriousAxeViolations();

  // Back on the page later: the list, never the key again.
  await page.goto(url('#/pc'));
  await page.goto(url('#/keys'));
  await page.locator('#key-list', { hasText: 'phone script' }).waitFor();
  expect(await text('main')).not.toContain(key);

  page.once('dialog', (dialog) => void dialog.accept());
  await page.getByRole('button', { name: 'Revoke phone script' }).click();
  await page.locator('#key-list', { hasText: 'No keys.' }).waitFor();
  expect((await withKey()).status).toBe(401);
});

test('sessions: the PC connection shows in the history, newest first', async () => {
  await waitFor(
    async () => {
      await page.goto(url('#/pc'));
      await page.goto(url('#/sessions'));
      await page.locator('#sessions-table table, #sessions-table p').first().waitFor({ timeout: 5_000 });
      return (await text('#sessions-table')).includes('PC connected (WebSocket');
    },
    15_000,
    'a tunnel session in the history',
  );
  const rows = await page.locator('#sessions-table tbody tr').allInnerTexts();
  // The first bridge's session ended when it stopped; the second is still connected.
  expect(rows.some((row) => row.includes('PC connected') && row.includes('still running'))).toBe(true);
  expect(rows.some((row) => row.includes('PC connected') && !row.includes('still running'))).toBe(true);
  await screenshot(page, 'sessions');
  await expectNoSeriousAxeViolations();
});

test('a reload forgets the sign-in: the token was held in memory, never in browser storage', async () => {
  const stored = await inBrowser<string[]>('[JSON.stringify(localStorage), JSON.stringify(sessionStorage), document.cookie]');
  expect(stored).toEqual(['{}', '{}', '']);
  await page.reload();
  await page.locator('#dev-user').waitFor();
  expect(await page.locator('#who-user').count()).toBe(0);
});

test('no page of the console made a request to another origin', () => {
  const origin = new URL(layout.relay.url).origin;
  expect(requested.length).toBeGreaterThan(10);
  expect(requested.filter((address) => new URL(address).origin !== origin)).toEqual([]);
});
