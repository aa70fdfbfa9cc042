/**
 * What happens when one of our programs meets an error nobody caught: the built program (not a
 * copy of it) logs one line saying what broke, with the stack, and exits 70 for its supervisor to
 * restart it, instead of dying silently or running on in a broken state. The fault is injected
 * from outside with `node -r`: a preloaded file that throws (or rejects) when the process gets
 * SIGUSR2, so the program's own code is untouched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CRASH_EXIT_CODE } from '../protocol/src/crash-policy';
import { closedPort } from './helpers/postgres';
import { freePort, startRelayProcess } from './helpers/relay-process';
import { waitFor } from './helpers/layout';

jest.setTimeout(180_000);

const ROOT = path.resolve(__dirname, '..');
const FAULTS = ['uncaughtException', 'unhandledRejection'] as const;
type Fault = (typeof FAULTS)[number];

let dir: string;
let preload: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-crash-'));
  preload = path.join(dir, 'fault-on-sigusr2.js');
  fs.writeFileSync(
    preload,
    `process.on('SIGUSR2', () => {
      if (process.env.CTLL_TEST_FAULT === 'unhandledRejection') Promise.reject(new Error('injected fault: nobody awaited this'));
      else throw new Error('injected fault: nobody caught this');
    });\n`,
  );
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Running {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | string>;
}

function run(args: string[], env: Record<string, string>): Running {
  const child = spawn(process.execPath, ['-r', preload, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return { child, output: () => output, exited };
}

/** The one line the policy writes, parsed. */
function crashLine(output: string): Record<string, unknown> {
  const line = output.split('\n').find((l) => l.includes('crashed ('));
  if (!line) throw new Error(`no crash line in:\n${output}`);
  return JSON.parse(line) as Record<string, unknown>;
}

function expectCrashReport(output: string, program: string, fault: Fault): void {
  const line = crashLine(output);
  expect(line).toMatchObject({
    level: 'error',
    message: `${program} crashed (${fault}); exiting for the supervisor to restart it`,
    kind: fault,
    error: fault === 'unhandledRejection' ? 'injected fault: nobody awaited this' : 'injected fault: nobody caught this',
  });
  expect(String(line.stack)).toMatch(/fault-on-sigusr2\.js/);
}

describe.each(FAULTS)('a program meeting an %s', (fault) => {
  it('api-backend logs it with its stack and exits 70 for the supervisor to restart it', async () => {
    const dataDir = fs.mkdtempSync(path.join(dir, 'relay-'));
    const relay = await startRelayProcess({ PROXY_DRIVER: 'process', CTLL_TEST_FAULT: fault }, dataDir, await freePort(), ['-r', preload]);
    try {
      relay.child.kill('SIGUSR2');
      expect(await relay.exited).toBe(CRASH_EXIT_CODE);
      expectCrashReport(relay.output(), 'api-backend', fault);
      expect(crashLine(relay.output())).toMatchObject({ component: 'api-backend' });
    } finally {
      await relay.kill();
    }
  });

  it('a streaming-proxy logs it with its owner hash and exits 70', async () => {
    const owner = randomBytes(8).toString('hex');
    const proxy = run([path.join(ROOT, 'streaming-proxy/dist/streaming-proxy.js')], {
      HOST: '127.0.0.1',
      PORT: '0',
      PROXY_SECRET: randomBytes(32).toString('hex'),
      PROXY_USER_HASH: owner,
      CTLL_TEST_FAULT: fault,
    });
    await waitFor(() => proxy.output().includes('streaming-proxy listening'), 30_000, 'the proxy to listen');
    proxy.child.kill('SIGUSR2');
    expect(await proxy.exited).toBe(CRASH_EXIT_CODE);
    expectCrashReport(proxy.output(), 'streaming-proxy', fault);
    expect(crashLine(proxy.output())).toMatchObject({ owner });
  });

  it('the bridge command logs it and exits 70', async () => {
    const bridge = run(
      [path.join(ROOT, 'bridge/dist/cli.js'), '--server', `http://127.0.0.1:${await closedPort()}`, '--token', 'not-a-real-token', '--json-logs'],
      { CTLL_TEST_FAULT: fault },
    );
    // It is up once it reports its first attempt (it keeps retrying: nothing listens there).
    await waitFor(() => bridge.output().length > 0, 30_000, 'the bridge to report');
    bridge.child.kill('SIGUSR2');
    expect(await bridge.exited).toBe(CRASH_EXIT_CODE);
    expectCrashReport(bridge.output(), 'ctll-bridge', fault);
  });
});
