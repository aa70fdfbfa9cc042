/**
 * Revoking a relay key cuts off the tunnel it holds open, not just its next request: a headless
 * `ctll-bridge` (its own process, `--token-file` with a `bridge` key) is serving a streamed answer
 * when its owner revokes the key; within 5 s its tunnel is gone (WebSocket and long-poll alike),
 * the answer in flight ends unfinished, and the bridge exits 77 saying how to get a credential
 * again. A tunnel opened with the user's own token is left alone, and the user's session history
 * shows which tunnel a key opened (by id and name, never the key). Real relay (process driver,
 * dev auth, PGlite), real bridge program, the official ollama client as the script.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import type { CreatedRelayKey } from '@ctll/protocol';
import { startBridge, type Bridge } from '../bridge/src';
import { startLayout, waitFor, type Layout } from './helpers/layout';

jest.setTimeout(60_000);

const CLI = path.resolve(__dirname, '../bridge/dist/cli.js');
const SIGNED_OUT_EXIT = 77;
/** What the issue promises: a revoked key stops working within this, open tunnels included. */
const REVOCATION_BOUND_MS = 5_000;

interface Cli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

let layout: Layout;
let scratch: string;
const clis: Cli[] = [];
const bridges: Bridge[] = [];

beforeAll(async () => {
  // A slow answer (one token each 200 ms): it is still streaming when the key is revoked.
  layout = await startLayout({ llm: { tokenDelayMs: 200 } });
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-revoke-'));
});

afterAll(async () => {
  for (const cli of clis) cli.child.kill('SIGKILL');
  await Promise.all(clis.map((cli) => cli.exited));
  await Promise.all(bridges.map((bridge) => bridge.close()));
  await layout?.close();
  fs.rmSync(scratch, { recursive: true, force: true });
});

async function api(method: string, route: string, user: string, body?: unknown): Promise<Response> {
  return fetch(`${layout.relay.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${layout.token(user)}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function createKey(user: string, scope: 'bridge' | 'call'): Promise<CreatedRelayKey> {
  const res = await api('POST', '/api/keys', user, { name: `${scope} key`, scope });
  expect(res.status).toBe(201);
  return (await res.json()) as CreatedRelayKey;
}

async function desktopConnected(user: string): Promise<boolean> {
  const res = await api('GET', '/api/proxy/status', user);
  return ((await res.json()) as { desktop?: { connected: boolean } }).desktop?.connected ?? false;
}

/** `ctll-bridge --token-file <key file>`, as a headless machine runs it. */
function startHeadlessBridge(key: string, transport: 'ws' | 'poll'): Cli {
  const dir = fs.mkdtempSync(path.join(scratch, `${transport}-`));
  const keyFile = path.join(dir, 'relay-key');
  fs.writeFileSync(keyFile, key, { mode: 0o600 });
  const args = ['--server', layout.relay.url, '--token-file', keyFile, '--target', layout.llm.url, '--transport', transport, '--no-fallback', '--json-logs'];
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', XDG_CONFIG_HOME: dir, CI: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const cli = { child, stdout: () => stdout, stderr: () => stderr, exited };
  clis.push(cli);
  return cli;
}

describe('revoking a bridge key', () => {
  it.each(['ws', 'poll'] as const)('closes the %s tunnel it holds open within 5 s, ends the answer in flight, and the bridge exits 77', async (transport) => {
    const user = `revoked-${transport}`;
    const bridgeKey = await createKey(user, 'bridge');
    const callKey = await createKey(user, 'call');
    const bridge = startHeadlessBridge(bridgeKey.key, transport);
    await waitFor(() => bridge.stderr().includes('"state":"connected"'), 30_000, 'the headless bridge to connect');

    // A script's answer is streaming through the tunnel.
    const ollama = new Ollama({ host: layout.tunnelUrl(user), headers: { authorization: `Bearer ${callKey.key}` } });
    const stream = await ollama.generate({ model: 'test-model', prompt: 'a long story', stream: true, options: { num_predict: 200 } });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ done: false });

    const revoke = await api('DELETE', `/api/keys/${bridgeKey.id}`, user);
    expect(revoke.status).toBe(204);
    const revokedAt = Date.now();
    // Polled from the revocation on; waitFor fails the test if the bound passes first.
    await waitFor(async () => !(await desktopConnected(user)), REVOCATION_BOUND_MS, 'the revoked key’s tunnel to be closed');

    // The answer in flight does not finish: it fails or stops short of its 200 tokens.
    let received = 1;
    let done = false;
    try {
      for (let part = await iterator.next(); !part.done; part = await iterator.next()) {
        if (part.value.done) done = true;
        else received += 1;
      }
    } catch {
      // The relay cut the answer off: what a caller sees when the desktop goes away mid-stream.
    }
    expect(done).toBe(false);
    expect(received).toBeLessThan(200);
    expect(Date.now() - revokedAt).toBeLessThan(30_000);

    // The bridge learns its key is no good: its reconnects are refused and it stops, saying what to do.
    expect(await bridge.exited).toBe(SIGNED_OUT_EXIT);
    expect(bridge.stderr()).toContain('invalid, revoked or expired relay key');
    expect(bridge.stderr()).toContain('ctll-bridge login');
    expect(bridge.stderr()).not.toContain(bridgeKey.key);
    expect(await desktopConnected(user)).toBe(false);
  });

  it("leaves a tunnel opened with the user's own token alone, only the revoked key's tunnel goes, and the session history shows which key opened it", async () => {
    const user = 'revoked-other';
    // The user's desktop at home runs on their own token; a second machine on a bridge key.
    const home = startBridge({ server: layout.relay.url, token: layout.token(user), target: layout.llm.url, transport: 'ws', fallback: false });
    bridges.push(home);
    await home.waitConnected(15_000);
    const bridgeKey = await createKey(user, 'bridge');
    const headless = startHeadlessBridge(bridgeKey.key, 'poll');
    await waitFor(() => headless.stderr().includes('"state":"connected"'), 30_000, 'the headless bridge to connect');
    const clients = async () =>
      ((await (await api('GET', '/api/proxy/status', user)).json()) as { desktop: { clients: string[] } }).desktop.clients.length;
    expect(await clients()).toBe(2);
    type Tunnel = { kind: string; transport: string; endedAt: string | null; reason: string | null; key: { id: string; name: string | null } | null };
    const tunnels = async () => {
      const res = await api('GET', '/api/audit/sessions', user);
      const text = await res.text();
      expect(text).not.toContain(bridgeKey.key);
      return (JSON.parse(text) as { sessions: Tunnel[] }).sessions.filter((s) => s.kind === 'tunnel');
    };
    await waitFor(async () => (await tunnels()).length === 2, 20_000, 'the audit to record both tunnel sessions');
    expect(await tunnels()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ transport: 'ws', endedAt: null, key: null }),
        expect.objectContaining({ transport: 'poll', endedAt: null, key: { id: bridgeKey.id, name: 'bridge key' } }),
      ]),
    );

    expect((await api('DELETE', `/api/keys/${bridgeKey.id}`, user)).status).toBe(204);
    await waitFor(async () => (await clients()) === 1, REVOCATION_BOUND_MS, 'the key’s tunnel to be closed');
    expect(await headless.exited).toBe(SIGNED_OUT_EXIT);
    // The token's tunnel still serves.
    expect(home.status().state).toBe('connected');
    const tags = await layout.fetchAs(user, '/api/tags');
    expect(tags.status).toBe(200);
    // The history keeps the key's id after its revocation (its name went with it), and why the tunnel ended.
    await waitFor(async () => (await tunnels()).some((s) => s.transport === 'poll' && s.endedAt !== null), 20_000, 'the audit to record the end of the key’s tunnel');
    expect((await tunnels()).find((s) => s.transport === 'poll')).toMatchObject({ key: { id: bridgeKey.id, name: null }, reason: '4401 relay key revoked; make a new `bridge` key or run `ctll-bridge login`' });
  });
});
