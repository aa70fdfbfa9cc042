/**
 * A signed-in bridge over a minute, as the issue asks: the relay is pointed at a real OpenID
 * provider (oidc-provider, 10 s access tokens) through the operator's settings, the person signs in
 * with `ctll-bridge login`, and a plain `ctll-bridge` (its own process, JSON log lines) keeps ONE
 * tunnel for more than 60 s, serving an answer that streams across two renewals. Then the person's
 * refresh token is revoked at the provider: once the access token runs out the bridge is cut off
 * within its expiry plus the relay's grace, and exits 77 saying to run `ctll-bridge login`.
 *
 * It takes over a minute by design, so CI runs it in the slow lane beside the main run
 * (jest.config.js SLOW_SUITES, .ci/run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { startOidcProvider, type OidcProvider } from './helpers/oidc-provider';

jest.setTimeout(240_000);

const CLI = path.resolve(__dirname, '../bridge/dist/cli.js');
const SIGNED_OUT_EXIT = 77;
const GRACE_MS = 3_000;
/** How long the one tunnel must last: the minute. */
const CONNECTED_FOR_MS = 60_000;
/** Streamed one a second: the answer outlasts two 10 s access tokens. */
const ANSWER_TOKENS = 24;

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

interface StoredCredentials {
  refreshToken: string;
  accessToken: string;
  accessTokenExpiresAt: number;
}

/** The bridge's JSON status lines (`--json-logs`, on stderr: stdout is for data only), in order. */
function statusLines(cli: Cli): Array<{ state: string; message: string }> {
  return cli
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { state: string; message: string });
}

describe('a bridge signed in with a real OpenID provider, over a minute', () => {
  let provider: OidcProvider;
  let layout: Layout;
  let configHome: string;
  let bridge: Cli | undefined;
  const credentials = (): StoredCredentials => JSON.parse(fs.readFileSync(path.join(configHome, 'ctll', 'credentials.json'), 'utf8')) as StoredCredentials;
  /** Alice's current access token, as the running bridge keeps it fresh on disk (one with a few seconds left). */
  const aliceToken = async (): Promise<string> => {
    await waitFor(() => credentials().accessTokenExpiresAt - Date.now() > 3_000, 15_000, 'a fresh access token on disk');
    return credentials().accessToken;
  };
  const status = async () =>
    (await (await fetch(`${layout.relay.url}/api/proxy/status`, { headers: { authorization: `Bearer ${await aliceToken()}` } })).json()) as {
      desktop?: { connected: boolean; clients: string[] };
    };

  beforeAll(async () => {
    provider = await startOidcProvider({ accessTokenTtlS: 10 });
    layout = await startLayout({ env: { ...provider.relayEnv, TOKEN_EXPIRY_GRACE_MS: String(GRACE_MS) }, llm: { tokenDelayMs: 1000 } });
    configHome = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-minute-'));
  });

  afterAll(async () => {
    bridge?.child.kill('SIGKILL');
    await bridge?.exited;
    await layout?.close();
    await provider?.close();
    fs.rmSync(configHome, { recursive: true, force: true });
  });

  it('keeps one tunnel for a minute across renewals, serves a streamed answer spanning two of them, and exits 77 once its sign-in is revoked', async () => {
    const login = startCli(['login', '--server', layout.relay.url], configHome);
    await waitFor(() => /enter the code \S+/.test(login.stderr()), 60_000, 'the login command to print its code');
    const [, uri, code] = /open (\S+) and enter the code (\S+)/.exec(login.stderr())!;
    await provider.approve(uri, code, 'alice');
    expect(await login.exited).toBe(0);
    // The script that calls alice's model uses a `call` key, made with her fresh token: it lasts past any 10 s token.
    const made = await fetch(`${layout.relay.url}/api/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${credentials().accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'script', scope: 'call' }),
    });
    expect(made.status).toBe(201);
    const callKey = ((await made.json()) as { key: string }).key;

    bridge = startCli(['--target', layout.llm.url, '--transport', 'ws', '--no-fallback', '--json-logs'], configHome);
    const running = bridge;
    await waitFor(() => statusLines(running).some((line) => line.state === 'connected'), 60_000, 'the signed-in bridge to connect');
    const connectedAt = Date.now();
    const firstExpiry = credentials().accessTokenExpiresAt;

    // Every access token the bridge held while the answer streamed (it stores each renewal).
    const seen = new Set([credentials().accessToken]);
    const watcher = setInterval(() => seen.add(credentials().accessToken), 250);
    const ollama = new Ollama({ host: layout.tunnelUrl('alice'), headers: { authorization: `Bearer ${callKey}` } });
    let received = 0;
    let done = false;
    try {
      const stream = await ollama.generate({ model: 'test-model', prompt: 'a long story', stream: true, options: { num_predict: ANSWER_TOKENS } });
      for await (const part of stream) {
        if (part.done) done = true;
        else received += 1;
      }
    } finally {
      clearInterval(watcher);
    }
    expect({ received, done }).toEqual({ received: ANSWER_TOKENS, done: true });
    // The answer outlived the first token and its grace, and the tunnel was renewed at least twice meanwhile.
    expect(Date.now()).toBeGreaterThan(firstExpiry + GRACE_MS);
    expect(seen.size).toBeGreaterThanOrEqual(3);

    // The rest of the minute, then the desktop still answers, through the same tunnel.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, connectedAt + CONNECTED_FOR_MS - Date.now())));
    const tags = await fetch(`${layout.tunnelUrl('alice')}/api/tags`, { headers: { authorization: `Bearer ${callKey}` } });
    expect(tags.status).toBe(200);
    expect(await tags.json()).toHaveProperty('models');
    expect(Date.now() - connectedAt).toBeGreaterThanOrEqual(CONNECTED_FOR_MS);
    // One connection all along: after its first `connected` the bridge never connected or retried again.
    const states = statusLines(running).map((line) => line.state);
    expect(states.filter((state) => state === 'connected').length).toBeGreaterThanOrEqual(1);
    expect(states.slice(states.indexOf('connected')).filter((state) => state === 'connecting' || state === 'retrying')).toEqual([]);
    expect((await status()).desktop).toMatchObject({ connected: true, clients: [expect.any(String)] });
    // The relay's own record agrees: alice's session history holds one tunnel session, still open.
    const tunnelSessions = async () => {
      const res = await fetch(`${layout.relay.url}/api/audit/sessions`, { headers: { authorization: `Bearer ${await aliceToken()}` } });
      return ((await res.json()) as { sessions: Array<{ kind: string; endedAt: string | null }> }).sessions.filter((s) => s.kind === 'tunnel');
    };
    await waitFor(async () => (await tunnelSessions()).length > 0, 20_000, 'the audit to record the tunnel session');
    expect(await tunnelSessions()).toEqual([expect.objectContaining({ kind: 'tunnel', endedAt: null, key: null })]);
    // Nothing but status lines so far, and none of them an error; no data on stdout.
    expect(running.stderr().split('\n').filter((line) => line !== '' && !line.startsWith('{'))).toEqual([]);
    expect(statusLines(running).filter((line) => line.state === 'error')).toEqual([]);
    expect(running.stdout()).toBe('');

    // The person's sign-in is revoked at the provider: no renewal succeeds from here on.
    const { refreshToken, accessTokenExpiresAt: lastExpiry } = credentials();
    await provider.revoke(refreshToken);
    const exitCode = await running.exited;
    const exitedAt = Date.now();
    expect(exitCode).toBe(SIGNED_OUT_EXIT);
    expect(running.stderr()).toContain(`run: ctll-bridge login --server ${layout.relay.url}`);
    // Cut off no later than the last access token's expiry plus the relay's grace (and a wide
    // margin for a loaded machine): not left running on a sign-in that is gone.
    expect(exitedAt).toBeLessThan(lastExpiry + GRACE_MS + 10_000);
    // The relay holds no tunnel for alice any more: she signs in afresh (another computer) and asks.
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-minute-'));
    try {
      const again = startCli(['login', '--server', layout.relay.url], elsewhere);
      await waitFor(() => /enter the code \S+/.test(again.stderr()), 60_000, 'the second login to print its code');
      const [, uri2, code2] = /open (\S+) and enter the code (\S+)/.exec(again.stderr())!;
      await provider.approve(uri2, code2, 'alice');
      expect(await again.exited).toBe(0);
      const fresh = (JSON.parse(fs.readFileSync(path.join(elsewhere, 'ctll', 'credentials.json'), 'utf8')) as StoredCredentials).accessToken;
      const offline = await fetch(`${layout.tunnelUrl('alice')}/api/tags`, { headers: { authorization: `Bearer ${fresh}` } });
      expect(offline.status).toBe(503);
      expect(await offline.json()).toMatchObject({ error: { code: 'desktop_offline' } });
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
