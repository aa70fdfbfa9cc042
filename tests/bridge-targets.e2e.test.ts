/**
 * Two local servers behind one bridge (Ollama and, say, LM Studio on one PC): `--target name=url`
 * names the second, and a web client reaches it through `/api/tunnel/<user>/t/<name>/...` while
 * every other path still goes to the default target. Through the real relay, proxy and bridge,
 * with two instances of the test model server; `/health` lists each target up or down.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBridge, StatusPrinter, type Bridge } from '../bridge/src';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { OLLAMA_TEST_VERSION, startLlmServer, type LlmServer } from './helpers/llm-server';

const CLI = path.resolve(__dirname, '../bridge/dist/cli.js');
// Probes often, so each change shows within a couple of seconds; 15 s bounds are generous.
const PROBE_INTERVAL_MS = 200;
const WAIT_MS = 15_000;

interface TargetEntry {
  name: string | null;
  up: boolean;
  kind: string;
  version?: string;
  error?: string;
  checkedAt: string;
}

interface Health {
  desktop: 'online' | 'offline';
  target: Omit<TargetEntry, 'name'> | null;
  targets: TargetEntry[];
}

let layout: Layout;
let lms: LlmServer;
let scratch: string;

beforeAll(async () => {
  layout = await startLayout();
  lms = await startLlmServer();
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-targets-'));
});

afterAll(async () => {
  await lms?.close();
  await layout?.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

async function health(user: string): Promise<Health> {
  const res = await fetch(`${layout.tunnelUrl(user)}/health`, { headers: { authorization: `Bearer ${layout.token(user)}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as Health;
}

const named = (body: Health, name: string) => body.targets.find((entry) => entry.name === name);

describe('a bridge with a default and a named target', () => {
  let bridge: Bridge;
  const lines: string[] = [];
  const user = 'two-servers@example.com';

  afterAll(async () => {
    await bridge?.close();
  });

  it('sends /t/<name>/ requests to the named target without the prefix, and the rest to the default', async () => {
    const printer = new StatusPrinter('text', { write: (text: string) => lines.push(text.trimEnd()) });
    bridge = startBridge({
      server: layout.relay.url,
      token: layout.token(user),
      target: layout.llm.url,
      targets: { lms: lms.url },
      probeIntervalMs: PROBE_INTERVAL_MS,
      onStatus: (status) => printer.status(status),
    });
    await bridge.waitConnected(WAIT_MS);

    const viaName = await layout.fetchAs(user, '/t/lms/api/tags?from=named');
    expect(viaName.status).toBe(200);
    expect(await viaName.json()).toHaveProperty('models');
    expect(lms.seen.map((seen) => seen.path)).toContain('/api/tags?from=named');
    expect(layout.llm.seen.map((seen) => seen.path)).not.toContain('/api/tags?from=named');

    const viaDefault = await layout.fetchAs(user, '/api/tags?from=default');
    expect(viaDefault.status).toBe(200);
    expect(layout.llm.seen.map((seen) => seen.path)).toContain('/api/tags?from=default');
    expect(lms.seen.map((seen) => seen.path)).not.toContain('/api/tags?from=default');

    // A streamed answer comes through the named target as it does through the default.
    const chat = await layout.fetchAs(user, '/t/lms/api/chat', {
      method: 'POST',
      body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 3 } }),
    });
    expect(chat.status).toBe(200);
    const text = (await chat.text())
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { message?: { content: string } }).message?.content ?? '')
      .join('');
    expect(text).toBe('tok0 tok1 tok2 ');
  });

  it('answers a name the bridge does not have with a 404 JSON error naming the ones it has', async () => {
    const before = layout.llm.seen.length + lms.seen.length;
    const res = await layout.fetchAs(user, '/t/lmstudio/v1/models');
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('unknown_target');
    expect(body.error.message).toContain('"lmstudio"');
    expect(body.error.message).toContain('its named targets: lms');
    // Neither server was asked.
    expect(layout.llm.seen.length + lms.seen.length).toBe(before);
  });

  it('reports each target in /health, and one going down while the other stays up', async () => {
    await waitFor(async () => named(await health(user), 'lms')?.up === true, WAIT_MS, 'the relay to hear of both targets');
    const up = await health(user);
    expect(up.target).toMatchObject({ up: true, kind: 'ollama', version: OLLAMA_TEST_VERSION });
    expect(up.targets.map((entry) => entry.name)).toEqual([null, 'lms']);
    expect(up.targets[0]).toMatchObject({ up: true, kind: 'ollama', version: OLLAMA_TEST_VERSION });
    expect(up.targets[1]).toMatchObject({ name: 'lms', up: true, kind: 'ollama', version: OLLAMA_TEST_VERSION });
    await waitFor(() => (lines.at(-1) ?? '').includes(`lms: ${lms.url} (Ollama ${OLLAMA_TEST_VERSION})`), WAIT_MS, 'the status line to show both');

    await lms.close();
    // A probe in flight as the server closes reads "connection reset" first; every later probe
    // finds nothing listening, which is what the status settles on.
    await waitFor(async () => named(await health(user), 'lms')?.error === 'connection refused', WAIT_MS, 'the relay to hear lms is down');
    const down = await health(user);
    expect(named(down, 'lms')).toMatchObject({ up: false, error: 'connection refused' });
    expect(down.target).toMatchObject({ up: true, version: OLLAMA_TEST_VERSION });
    expect(down.targets[0]).toMatchObject({ name: null, up: true });
    await waitFor(() => (lines.at(-1) ?? '').includes(`lms: Ollama not reachable at ${lms.url} (connection refused)`), WAIT_MS, 'the status line to say lms is down');
    expect(lines.at(-1)).toContain(`target ${layout.llm.url} (Ollama ${OLLAMA_TEST_VERSION})`);

    // The default target still answers; the named one fails as a target that cannot be reached.
    expect((await layout.fetchAs(user, '/api/tags')).status).toBe(200);
    const unreachable = await layout.fetchAs(user, '/t/lms/api/tags');
    expect(unreachable.status).toBe(502);
    expect(((await unreachable.json()) as { error: { code: string } }).error.code).toBe('target_unreachable');

    lms = await startLlmServer({ port: lms.port });
    await waitFor(async () => named(await health(user), 'lms')?.up === true, WAIT_MS, 'the relay to hear lms is back');
  });
});

describe('the targets setting from bridge.json, CTLL_TARGET and --target', () => {
  const user = 'precedence@example.com';
  let tokenFile: string;
  let configFile: string;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    tokenFile = path.join(scratch, 'token');
    fs.writeFileSync(tokenFile, `${layout.token(user)}\n`, { mode: 0o600 });
    configFile = path.join(scratch, 'bridge.json');
    fs.writeFileSync(configFile, JSON.stringify({ server: layout.relay.url, tokenFile: 'token', target: [layout.llm.url, `from-file=${lms.url}`] }));
  });

  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
  });

  /** Starts the CLI, waits until /health lists a named target, stops it; returns the names /health listed. */
  async function namesWith(args: string[], env: Record<string, string>): Promise<Array<string | null>> {
    const child = spawn(process.execPath, [CLI, '--config', configFile, '--probe-interval-ms', String(PROBE_INTERVAL_MS), ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: scratch, ...env },
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let names: Array<string | null> = [];
    try {
      await waitFor(
        async () => {
          const body = await health(user);
          names = body.targets.map((entry) => entry.name);
          return body.desktop === 'online' && names.length > 1;
        },
        WAIT_MS,
        `the bridge to report its targets (stderr: ${stderr})`,
      );
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    await waitFor(async () => (await health(user)).desktop === 'offline', WAIT_MS, 'the bridge to leave');
    return names;
  }

  it('uses the file\'s list, then the variable\'s over it, then the flags\' over both, each whole', async () => {
    expect(await namesWith([], {})).toEqual([null, 'from-file']);
    expect(await namesWith([], { CTLL_TARGET: `${layout.llm.url},from-env=${lms.url}` })).toEqual([null, 'from-env']);
    expect(await namesWith(['--target', `from-flag=${lms.url}`, '--target', `second=${lms.url}`], { CTLL_TARGET: `from-env=${lms.url}` })).toEqual([
      null,
      'from-flag',
      'second',
    ]);
  });
});
