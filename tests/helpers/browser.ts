/**
 * The browser for the web console's tests: Debian's Chromium (`chromium` package,
 * scripts/ci/provision-tools.sh installs it) driven by playwright-core, which downloads no browser
 * of its own. Also the checks every console page gets: axe-core's accessibility rules, and
 * screenshots kept as CI artefacts (and, for `npm run screenshots`, as the README's pictures).
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CTLL_CHROMIUM ?? '/usr/bin/chromium';
/** Where every run leaves its screenshots (gitignored; CI keeps them as artefacts). */
export const ARTEFACTS_DIR = path.resolve(__dirname, '../../artifacts/console');
/** `npm run screenshots` sets CTLL_DOCS_SCREENSHOTS=1: the README's pictures are written here too. */
const DOCS_DIR = path.resolve(__dirname, '../../docs/screenshots');

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install Debian's chromium package (scripts/ci/provision-tools.sh) or set CTLL_CHROMIUM`);
  }
  // Chromium's sandbox refuses to run as root, which CI and these machines are.
  const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args });
}

/**
 * A browser context whose pages reach 127.0.0.1 only: anything else is aborted before it leaves
 * the machine (oidc-provider's development sign-in pages, for one, ask for a web font). Pages
 * still report such requests (page.on('request')), so a test can tell that one was attempted.
 */
export async function localContext(browser: Browser, options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
  const context = await browser.newContext(options);
  await context.route(
    (address) => address.hostname !== '127.0.0.1',
    (route) => route.abort('blockedbyclient'),
  );
  return context;
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: number;
}

const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's serious and critical violations on the page as it is now. The script is evaluated
 * through the DevTools protocol, which the page's CSP does not govern (an injected <script> would
 * be refused, as it should be).
 */
export async function seriousAxeViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate<AxeViolation[]>(`axe.run(document).then((result) =>
    result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length })))`);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(ARTEFACTS_DIR, { recursive: true });
  const file = path.join(ARTEFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file });
  if (process.env.CTLL_DOCS_SCREENSHOTS === '1') {
    fs.mkdirSync(DOCS_DIR, { recursive: true });
    fs.copyFileSync(file, path.join(DOCS_DIR, `${name}.png`));
  }
}
