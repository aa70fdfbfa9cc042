/**
 * Device login end to end, as a person does it: the relay is pointed at a real OpenID provider
 * (oidc-provider, 10 s access tokens) through JWT_ISSUER / JWT_AUDIENCE / JWT_JWKS_URI /
 * OIDC_DEVICE_CLIENT_ID; the bundled `ctll-bridge` runs as its own process with a scratch
 * XDG_CONFIG_HOME; the test plays the person at the browser.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { startOidcProvider, type OidcProvider, type TestAccount } from './helpers/oidc-provider';

// Waits are generous (a loaded CI machine starts node processes slowly); none is a speed assertion.
jest.setTimeout(180_000);

const CLI = path.resolve(__dirname, '../bridge/dist/cli.js');
const SIGNED_OUT_EXIT = 77;
const SIGN_IN_UNAVAILABLE_EXIT = 78;

interface Cli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

function startCli(args: string[], configHome: string): Cli {
  // CI=1: never try to open a browser.
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', XDG_CONFIG_HOME: configHome, CI: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs a command to its end. Never spawnSync: the relay runs in this process and must keep answering. */
async function runCli(args: string[], configHome: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const cli = startCli(args, configHome);
  const status = await cli.exited;
  return { status, stdout: cli.stdout(), stderr: cli.stderr() };
}

interface StoredCredentials {
  server: string;
  refreshToken: string;
  accessToken: string;
  accessTokenExpiresAt: number;
}

function credentialsFile(configHome: string): string {
  return path.join(configHome, 'ctll', 'credentials.json');
}

function readCredentials(configHome: string): StoredCredentials {
  return JSON.parse(fs.readFileSync(credentialsFile(configHome), 'utf8')) as StoredCredentials;
}

/** `ctll-bridge login`, with the test approving the code the command prints. */
async function signIn(layout: Layout, provider: OidcProvider, configHome: string, account: TestAccount): Promise<Cli> {
  const login = startCli(['login', '--server', layout.relay.url], configHome);
  await waitFor(() => /enter the code \S+/.test(login.stderr()), 60_000, 'the login command to print its code');
  const [, uri, code] = /open (\S+) and enter the code (\S+)/.exec(login.stderr())!;
  await provider.approve(uri, code, account);
  expect(await login.exited).toBe(0);
  return login;
}

/** A client's request for the user's desktop, with the user's own access token. */
async function callDesktop(layout: Layout, user: string, token: string): Promise<Response> {
  return fetch(`${layout.tunnelUrl(user)}/api/tags`, { headers: { authorization: `Bearer ${token}` } });
}

describe('signing a bridge in with a real OpenID provider', () => {
  let provider: OidcProvider;
  let layout: Layout;
  let configHome: string;
  const running: Cli[] = [];

  beforeAll(async () => {
    provider = await startOidcProvider({ accessTokenTtlS: 10 });
    layout = await startLayout({ env: provider.relayEnv });
    configHome = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-signin-'));
  });

  afterAll(async () => {
    for (const cli of running) cli.child.kill('SIGKILL');
    await Promise.all(running.map((cli) => cli.exited));
    await layout?.close();
    await provider?.close();
    fs.rmSync(configHome, { recursive: true, force: true });
  });

  it('serves its sign-in settings publicly, without a token', async () => {
    const res = await fetch(`${layout.relay.url}/api/auth/config`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      mode: 'oidc',
      issuer: provider.issuer,
      audience: provider.audience,
      clientId: provider.clientId,
      scopes: ['openid', 'profile', 'email', 'offline_access'],
      webClientId: null,
    });
  });

  it('login stores the refresh token for its owner only, and a plain ctll-bridge then connects and serves', async () => {
    const login = await signIn(layout, provider, configHome, 'alice');
    expect(login.stderr()).toContain('Signed in as Alice Example (alice)');
    expect(fs.statSync(credentialsFile(configHome)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(credentialsFile(configHome))).mode & 0o777).toBe(0o700);
    const stored = readCredentials(configHome);
    expect(stored.server).toBe(layout.relay.url);
    expect(stored.refreshToken).toEqual(expect.any(String));
    // Neither token is ever printed.
    expect(login.stderr()).not.toContain(stored.refreshToken);

    const bridge = startCli(['--target', layout.llm.url], configHome);
    running.push(bridge);
    await waitFor(() => bridge.stderr().includes('connected to'), 60_000, 'the signed-in bridge to connect');
    expect(bridge.stderr()).toContain('as alice');
    const res = await callDesktop(layout, 'alice', readCredentials(configHome).accessToken);
    expect(res.status).toBe(200);
    expect(await res.json()).toHaveProperty('models');
  });

  it('renews its 10 s access token and, after the first one expired, reconnects to a restarted relay', async () => {
    const bridge = running[0];
    const first = readCredentials(configHome);
    // Two renewals: the file holds a newer token each time, which the relay accepts.
    await waitFor(() => readCredentials(configHome).accessToken !== first.accessToken, 30_000, 'a first renewal');
    const second = readCredentials(configHome);
    await waitFor(() => readCredentials(configHome).accessToken !== second.accessToken, 30_000, 'a second renewal');
    expect(Date.now()).toBeGreaterThan(first.accessTokenExpiresAt);
    // The relay restarts: the bridge reconnects, which only a fresh token gets it through.
    const before = bridge.stderr().length;
    await layout.restartRelay();
    await waitFor(() => bridge.stderr().slice(before).includes('connected to'), 60_000, 'the bridge to reconnect');
    await waitFor(async () => (await callDesktop(layout, 'alice', readCredentials(configHome).accessToken)).status === 200, 30_000, 'a request to be served again');
    expect(bridge.stderr().slice(before)).not.toMatch(/refused the token/);
    // Status lines go to stderr, and nothing else does; stdout stays empty.
    expect(bridge.stdout()).toBe('');
    expect(bridge.stderr().split('\n').filter((line) => line !== '' && !line.startsWith('ctll-bridge: '))).toEqual([]);
  });

  it('whoami prints who is signed in and when the access token expires', async () => {
    const result = await runCli(['whoami'], configHome);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^Alice Example \\(alice\\) at ${layout.relay.url}\naccess token expires \\d{4}-\\d\\d-\\d\\dT`));
    // The same for machines, on stdout as well.
    const json = await runCli(['whoami', '--json'], configHome);
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      server: layout.relay.url,
      subject: 'alice',
      displayName: 'Alice Example',
      accessTokenExpiresAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
  });

  it('a refresh token revoked at the provider ends the bridge with exit 77 and says to log in again', async () => {
    const bridge = running[0];
    await provider.revoke(readCredentials(configHome).refreshToken);
    // The next renewal (within 10 s) is refused.
    expect(await bridge.exited).toBe(SIGNED_OUT_EXIT);
    expect(bridge.stderr()).toContain(`your sign-in is no longer valid (the identity provider refused it); run: ctll-bridge login --server ${layout.relay.url}`);
    const whoami = await runCli(['whoami'], configHome);
    expect(whoami.status).toBe(SIGNED_OUT_EXIT);
    expect(whoami.stderr).toContain('ctll-bridge login --server');
  });

  it('logout revokes the sign-in at the provider and deletes the file', async () => {
    await signIn(layout, provider, configHome, 'bob');
    const { refreshToken } = readCredentials(configHome);
    const result = await runCli(['logout'], configHome);
    expect(result.status).toBe(0);
    expect(result.stderr).toContain(`Signed out of ${layout.relay.url}`);
    expect(fs.existsSync(credentialsFile(configHome))).toBe(false);
    // The copy a thief might have kept is worth nothing now.
    const refresh = await fetch(`${provider.issuer}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: provider.clientId }),
    });
    expect(refresh.status).toBe(400);
    expect(await refresh.json()).toMatchObject({ error: 'invalid_grant' });
    expect(await runCli(['whoami'], configHome)).toMatchObject({ status: 1, stderr: expect.stringContaining('Not signed in') });
  });
});

describe('signing in against a relay with dev auth', () => {
  let layout: Layout;
  let configHome: string;

  beforeAll(async () => {
    layout = await startLayout();
    configHome = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-signin-'));
  });

  afterAll(async () => {
    await layout?.close();
    fs.rmSync(configHome, { recursive: true, force: true });
  });

  it('serves the same settings shape, and login prints the one-line alternative', async () => {
    const res = await fetch(`${layout.relay.url}/api/auth/config`);
    expect(await res.json()).toEqual({ mode: 'dev', issuer: 'urn:ctll:dev', audience: 'ctll-relay', clientId: null, scopes: ['openid', 'profile', 'email', 'offline_access'], webClientId: null });
    const login = await runCli(['login', '--server', layout.relay.url], configHome);
    expect(login.status).toBe(SIGN_IN_UNAVAILABLE_EXIT);
    expect(login.stderr).toContain('npm run --silent token -- <your user name>');
    expect(fs.existsSync(credentialsFile(configHome))).toBe(false);
  });
});
