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
import { launchChromium, screenshot, seriousAxeViolations } from './helpers/browser';
import { OLLAMA_TEST_VERSION } from './helpers/llm-server';

jest.setTimeout(60_000);

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
  context = await browser.newContext({ viewport: { width: 1024, height: 720 } });
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

test('My PC shows "Connected" when the bridge connects and "Offline" when it stops, without a reload', async () => {
  await page.goto(url('#/pc'));
  await page.locator('#pc-state', { hasText: 'Offline' }).waitFor();
  const loaded = await inBrowser<number>("performance.getEntriesByType('navigation').length");

  const first = await layout.connectBridge('alice');
  await page.locator('#pc-state', { hasText: 'Connected' }).waitFor({ timeout: 10_000 });
  await page.locator('dd', { hasText: `up: Ollama ${OLLAMA_TEST_VERSION}` }).waitFor({ timeout: 10_000 });
  expect(await text('main')).toContain('WebSocket');
  await screenshot(page, 'my-pc');
  await expectNoSeriousAxeViolations();

  await first.close();
  await page.locator('#pc-state', { hasText: 'Offline' }).waitFor({ timeout: 10_000 });
  // Same document all along: the page updated itself.
  expect(await inBrowser<number>("performance.getEntriesByType('navigation').length")).toBe(loaded);
  expect(await inBrowser<string>('location.hash')).toBe('#/pc');
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

test('chat: the answer appears token by token as the model on the PC generates it', async () => {
  await page.goto(url('#/chat'));
  await page.locator('#chat-model option[value="test-model:latest"]').waitFor({ state: 'attached' });
  // Every change of the answer's text, as the browser made it.
  await inBrowser(`(() => {
    const seen = (window.answerTexts = []);
    new MutationObserver(() => {
      const answers = document.querySelectorAll('#chat-transcript .message.assistant');
      const last = answers[answers.length - 1];
      if (last && seen[seen.length - 1] !== last.textContent) seen.push(last.textContent);
    }).observe(document.getElementById('chat-transcript'), { childList: true, subtree: true, characterData: true });
  })()`);
  await page.locator('#chat-prompt').fill('Hello from the browser');
  await page.locator('#chat-send').click();
  await page.locator('#chat-status', { hasText: 'Answer complete.' }).waitFor({ timeout: 20_000 });

  const full = Array.from({ length: TOKENS }, (_, i) => `tok${i} `).join('');
  expect(await page.locator('#chat-transcript .message.assistant').last().textContent()).toBe(full);
  const texts = await inBrowser<string[]>('window.answerTexts');
  const beforeLast = texts.filter((t) => t.length > 0 && t !== full);
  // Several distinct partial answers were on screen before the last token arrived, each one
  // growing the one before.
  expect(beforeLast.length).toBeGreaterThanOrEqual(5);
  for (let i = 1; i < beforeLast.length; i++) expect(beforeLast[i].startsWith(beforeLast[i - 1])).toBe(true);
  expect(full.startsWith(beforeLast[beforeLast.length - 1])).toBe(true);
  const userMessage = layout.llm.seen.filter((r) => r.path === '/api/chat').length;
  expect(userMessage).toBe(1);
  await screenshot(page, 'chat');
  await expectNoSeriousAxeViolations();
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
