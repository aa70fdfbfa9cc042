/**
 * A bridge on a network where the way out is a SOCKS5 proxy: with ALL_PROXY=socks5://... (or
 * --proxy) the built ctll-bridge connects to a real relay through a small SOCKS5 server and streams
 * a chat from the slow test model, and the SOCKS server is what carried the connection.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { startSocks5Server, type Socks5Server } from './helpers/socks5-server';

const CLI = path.resolve(__dirname, '../bridge/dist/cli.js');
const user = 'socks@example.com';

let layout: Layout;
let socks: Socks5Server;
let scratch: string;
let tokenFile: string;

beforeAll(async () => {
  layout = await startLayout({ llm: { tokenDelayMs: 100, tokens: 4 } });
  socks = await startSocks5Server();
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-socks-'));
  tokenFile = path.join(scratch, 'token');
  fs.writeFileSync(tokenFile, `${layout.token(user)}\n`, { mode: 0o600 });
}, 60_000);

afterAll(async () => {
  await socks?.close();
  await layout?.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

function startCli(args: string[], env: Record<string, string>): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, '--server', layout.relay.url, '--token-file', tokenFile, '--target', layout.llm.url, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: scratch, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

async function chat(testId: string): Promise<string> {
  const ollama = new Ollama({ host: layout.tunnelUrl(user), headers: { authorization: `Bearer ${layout.token(user)}`, 'x-test-id': testId } });
  let text = '';
  for await (const part of await ollama.chat({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_predict: 4 } })) {
    text += part.message.content;
  }
  return text;
}

/** Runs the bridge with these extra flags and variables, streams one chat, and stops it. */
async function connectAndStream(args: string[], env: Record<string, string>, transport: 'ws' | 'poll'): Promise<void> {
  const relayAddress = `127.0.0.1:${new URL(layout.relay.url).port}`;
  const before = socks.connections.filter((to) => to === relayAddress).length;
  const bridge = startCli(args, env);
  try {
    await waitFor(() => bridge.stderr().includes('connected to'), 20_000, `the bridge to connect (stderr: ${bridge.stderr()})`);
    expect(bridge.stderr()).toContain(`reaching the relay through the proxy ${socks.url}`);
    expect(bridge.stderr()).toContain(`connected to ${layout.relay.url} as ${user} via ${transport === 'ws' ? 'WebSocket' : 'long-poll'}`);
    expect(await chat(`socks-${transport}`)).toBe('tok0 tok1 tok2 tok3 ');
    // The tunnel (and, polling, every poll and answer) went through the SOCKS server to the relay.
    expect(socks.connections.filter((to) => to === relayAddress).length).toBeGreaterThan(before);
  } finally {
    bridge.child.kill('SIGTERM');
  }
  expect(await bridge.exited).toBe(0);
  // Status lines go to stderr, nothing else does (no warnings), and stdout stays empty.
  expect(bridge.stdout()).toBe('');
  expect(bridge.stderr().split('\n').filter((line) => line !== '' && !line.startsWith('ctll-bridge: '))).toEqual([]);
}

describe('ctll-bridge behind a SOCKS5 proxy', () => {
  it('connects through the proxy ALL_PROXY names and streams a chat over a WebSocket', async () => {
    await connectAndStream([], { ALL_PROXY: socks.url }, 'ws');
  }, 40_000);

  it('connects through the proxy --proxy names and streams a chat by long-polling', async () => {
    await connectAndStream(['--transport', 'poll', '--no-fallback', '--proxy', socks.url], {}, 'poll');
  }, 40_000);
});
