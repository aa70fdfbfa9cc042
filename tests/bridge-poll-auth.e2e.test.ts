/**
 * A supervisor's view of a bridge whose token the relay refuses, over long-polling (the WebSocket
 * case is in tests/bridge-install.e2e.test.ts): the built ctll-bridge registers with a real relay,
 * is refused three times in a row, and exits with code 77 and a message on stderr saying what to do;
 * with --json the same message is a JSON line. Nothing goes to stdout.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLayout, type Layout } from './helpers/layout';

const CLI = path.resolve(__dirname, '../bridge/dist/cli.js');

let layout: Layout;
let scratch: string;
let badToken: string;

beforeAll(async () => {
  layout = await startLayout({ transport: 'poll' });
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-poll-auth-'));
  badToken = path.join(scratch, 'bad-token');
  fs.writeFileSync(badToken, 'not-a-valid-token\n', { mode: 0o600 });
});

afterAll(async () => {
  await layout?.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

function runUntilExit(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Short backoff steps are not a flag; three refusals take 1 + 2 s of waiting.
  const child = spawn(process.execPath, [CLI, '--server', layout.relay.url, '--token-file', badToken, '--transport', 'poll', '--probe-interval-ms', '0', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: scratch },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('a long-polling bridge whose token the relay refuses', () => {
  it('stops with exit code 77 and says on stderr to sign in again after three refused registrations', async () => {
    const { code, stdout, stderr } = await runUntilExit([]);
    expect(code).toBe(77);
    expect(stdout).toBe('');
    expect(stderr).toContain(`ctll-bridge: connecting to ${layout.relay.url} via long-poll`);
    expect(stderr).toMatch(/\nctll-bridge: the relay refused the token: 401 .*\(3 times in a row\); stopped\.\n/);
    expect(stderr).toContain('Sign in again with `ctll-bridge login`');
  }, 30_000);

  it('says the same as a JSON line with --json', async () => {
    const { code, stdout, stderr } = await runUntilExit(['--json']);
    expect(code).toBe(77);
    expect(stdout).toBe('');
    const events = stderr.trimEnd().split('\n').map((line) => JSON.parse(line) as { state: string; transport?: string; message: string });
    expect(events[0]).toMatchObject({ state: 'connecting', transport: 'poll' });
    expect(events.at(-1)).toMatchObject({ state: 'error', message: expect.stringMatching(/^the relay refused the token: 401 .*\(3 times in a row\); stopped\.\nSign in again/) });
  }, 30_000);
});
