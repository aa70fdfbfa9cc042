/**
 * A real OpenID provider for sign-in tests: oidc-provider (oidc-provider-server.mjs) in a child
 * process on 127.0.0.1, with the device flow, rotating refresh tokens, revocation and RS256 JWT
 * access tokens for the relay's audience. `relayEnv` points a relay at it through the settings an
 * operator sets in production; `approve` plays the person at the browser: opens the verification
 * page, enters the user code, signs in as a test account and approves.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

const SERVER = path.join(__dirname, 'oidc-provider-server.mjs');

/** Who can sign in: the devInteractions login form takes the account id as the user name. */
export const TEST_ACCOUNTS = Object.freeze({
  alice: { name: 'Alice Example', email: 'alice@example.test' },
  bob: { name: 'Bob Example', email: 'bob@example.test' },
});
export type TestAccount = keyof typeof TEST_ACCOUNTS;

export interface OidcProviderOptions {
  /** Access-token lifetime in seconds (default 10: renewals happen within a short test). */
  accessTokenTtlS?: number;
  /** Also offer the web console's public client (authorization code with PKCE), with these callback URLs. */
  webRedirectUris?: string[];
}

export interface OidcProvider {
  issuer: string;
  clientId: string;
  /** The web console's client id (when `webRedirectUris` was given): the relay's OIDC_WEB_CLIENT_ID. */
  webClientId: string;
  audience: string;
  /** The relay's environment for this provider: JWT_ISSUER, JWT_AUDIENCE, JWT_JWKS_URI, OIDC_DEVICE_CLIENT_ID. */
  relayEnv: Record<string, string>;
  /** Plays the person: enters `userCode` at `verificationUri`, signs in as `account` and approves. */
  approve(verificationUri: string, userCode: string, account: TestAccount): Promise<void>;
  /** Revokes a refresh token (and with it its whole grant) at the revocation endpoint, as the client. */
  revoke(refreshToken: string): Promise<void>;
  /** What the provider printed on stderr (warnings, server errors). */
  output(): string;
  close(): Promise<void>;
}

export async function startOidcProvider(options: OidcProviderOptions = {}): Promise<OidcProvider> {
  const clientId = 'ctll-bridge-test';
  const audience = 'https://relay.ctll.test/api';
  const webClientId = 'ctll-console-test';
  const settings = { clientId, audience, accessTokenTtlS: options.accessTokenTtlS ?? 10, accounts: TEST_ACCOUNTS, webClientId, webRedirectUris: options.webRedirectUris };
  const child = spawn(process.execPath, [SERVER, JSON.stringify(settings)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const issuer = await firstLine(child, exited, () => stderr);
  return {
    issuer,
    clientId,
    webClientId,
    audience,
    relayEnv: { JWT_ISSUER: issuer, JWT_AUDIENCE: audience, JWT_JWKS_URI: `${issuer}/jwks`, OIDC_DEVICE_CLIENT_ID: clientId },
    approve: (verificationUri, userCode, account) => approve(verificationUri, userCode, account),
    async revoke(refreshToken) {
      const res = await fetch(`${issuer}/token/revocation`, {
        method: 'POST',
        body: new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token', client_id: clientId }),
      });
      if (!res.ok) throw new Error(`revocation answered ${res.status}: ${await res.text()}`);
    },
    output: () => stderr,
    async close() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function firstLine(child: ChildProcess, exited: Promise<void>, stderr: () => string): Promise<string> {
  const lines = readline.createInterface({ input: child.stdout! });
  const line = await Promise.race([
    new Promise<string>((resolve) => lines.once('line', resolve)),
    exited.then(() => {
      throw new Error(`oidc-provider exited during start-up:\n${stderr()}`);
    }),
  ]);
  lines.close();
  return (JSON.parse(line) as { issuer: string }).issuer;
}

/**
 * A browser's part, form by form: each page's (first) form is submitted with its hidden fields
 * plus what the person types; cookies are kept as a browser would. Ends at the success page.
 */
async function approve(verificationUri: string, userCode: string, account: TestAccount): Promise<void> {
  const browser = new FormBrowser();
  const typed: Record<string, string> = { user_code: userCode, login: account, password: 'any password' };
  let page = await browser.get(verificationUri);
  for (let step = 0; step < 10; step += 1) {
    if (/Sign-in Success/i.test(page.html)) return;
    const form = firstForm(page.html, page.url);
    if (!form) throw new Error(`no form and no success on ${page.url} (${page.status}):\n${page.html.slice(0, 2000)}`);
    const fields = { ...form.fields };
    for (const name of form.inputs) if (typed[name] !== undefined) fields[name] = typed[name];
    page = await browser.post(form.action, fields);
  }
  throw new Error(`the device sign-in did not finish in 10 pages; last ${page.url}:\n${page.html.slice(0, 2000)}`);
}

interface Page {
  url: string;
  status: number;
  html: string;
}

class FormBrowser {
  private readonly cookies = new Map<string, string>();

  get(url: string): Promise<Page> {
    return this.request(url, { method: 'GET' });
  }

  post(url: string, fields: Record<string, string>): Promise<Page> {
    return this.request(url, { method: 'POST', body: new URLSearchParams(fields) });
  }

  /** Follows redirects by hand: each hop may set cookies the next one needs. */
  private async request(url: string, init: { method: string; body?: URLSearchParams }): Promise<Page> {
    let current = url;
    let request = init;
    for (let hop = 0; hop < 10; hop += 1) {
      const res = await fetch(current, { ...request, redirect: 'manual', headers: { cookie: this.cookieHeader() } });
      for (const cookie of res.headers.getSetCookie()) this.keep(cookie);
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        current = new URL(location, current).href;
        request = { method: 'GET' };
        continue;
      }
      return { url: current, status: res.status, html: await res.text() };
    }
    throw new Error(`too many redirects from ${url}`);
  }

  private keep(setCookie: string): void {
    const [pair, ...attributes] = setCookie.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expired = attributes.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now());
    if (value === '' || expired) this.cookies.delete(name);
    else this.cookies.set(name, value);
  }

  private cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

/** The page's first form: where it posts, its hidden and pre-filled fields, and the names of every input. */
function firstForm(html: string, pageUrl: string): { action: string; fields: Record<string, string>; inputs: string[] } | undefined {
  const match = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!match) return undefined;
  const action = /action="([^"]*)"/i.exec(match[1])?.[1] ?? pageUrl;
  const fields: Record<string, string> = {};
  const inputs: string[] = [];
  for (const input of match[2].matchAll(/<input\b([^>]*)>/gi)) {
    const name = /name="([^"]*)"/i.exec(input[1])?.[1];
    if (!name) continue;
    inputs.push(name);
    const value = /value="([^"]*)"/i.exec(input[1])?.[1];
    if (value !== undefined) fields[name] = value.replace(/&amp;/g, '&').replace(/&quot;/g, '"');
  }
  return { action: new URL(action.replace(/&amp;/g, '&'), pageUrl).href, fields, inputs };
}
