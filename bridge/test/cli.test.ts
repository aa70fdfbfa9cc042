/**
 * The `ctll-bridge` command as a person runs it: the bundled CLI in a child process.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { startFakeRelay, type FakeRelay } from './fake-relay';
import { bundle, eventually } from './helpers';

let cli: string;
let dir: string;
let relay: FakeRelay;

beforeAll(async () => {
  ({ file: cli, dir } = await bundle('bridge/src/cli.ts', 'cli.js'));
  relay = await startFakeRelay();
});

afterAll(async () => {
  await relay.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 });
}

describe('ctll-bridge command line', () => {
  it('prints help and version', () => {
    expect(run(['--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('--server <url>') });
    expect(run(['--version']).stdout).toMatch(/^ctll-bridge \d+\.\d+\.\d+\n$/);
  });

  it('exits 2 naming the bad flag', () => {
    const unknown = run(['--sever', 'x']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '--sever'/);
    const missing = run(['--token', 'abc']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^ctll-bridge: --server: is required/);
    const noToken = run(['--server', relay.url]);
    expect(noToken.stderr).toMatch(/--token: is required \(or set CTLL_TOKEN\)/);
    const badMs = run(['--server', relay.url, '--token', 'a', '--ping-timeout-ms', '10s']);
    expect(badMs).toMatchObject({ status: 2, stderr: expect.stringMatching(/--ping-timeout-ms: "10s"/) });
    const badTransport = run(['--server', relay.url, '--token', 'a', '--transport', 'carrier-pigeon']);
    expect(badTransport).toMatchObject({ status: 2, stderr: expect.stringMatching(/--transport: "carrier-pigeon"/) });
    const badCount = run(['--server', relay.url, '--token', 'a', '--auth-fail-exit', 'three']);
    expect(badCount).toMatchObject({ status: 2, stderr: expect.stringMatching(/--auth-fail-exit: "three" is not a whole number/) });
  });

  it('refuses an http:// relay that is not on this computer before sending anything, unless --allow-insecure', () => {
    const refused = run(['--server', 'http://relay.example.com', '--token', 'a']);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/^ctll-bridge: --server: "http:\/\/relay\.example\.com" is not encrypted: .* pass --allow-insecure/);
  });

  it('reads the token from --token-file and says when the file cannot be read', async () => {
    const missing = run(['--server', relay.url, '--token-file', `${dir}/nowhere`]);
    expect(missing).toMatchObject({ status: 2, stderr: expect.stringMatching(/^ctll-bridge: --token-file: cannot read .*nowhere \(ENOENT\)/) });
    const file = `${dir}/token`;
    fs.writeFileSync(file, '  from-a-file\n', { mode: 0o644 });
    const child = spawn(process.execPath, [cli, '--server', relay.url, '--token-file', file], { env: { PATH: process.env.PATH ?? '' } });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const peer = await relay.nextPeer();
      expect(peer.request.headers.authorization).toBe('Bearer from-a-file');
      // Not in the process list: only the file's name is.
      expect(fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8')).not.toContain('from-a-file');
      await eventually(() => stderr.includes('can be read by other users'));
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('connects with the relay and token file named in bridge.json in its config directory', async () => {
    const configDir = `${dir}/xdg/ctll`;
    fs.mkdirSync(configDir, { recursive: true });
    fs.writeFileSync(`${configDir}/token`, 'token-from-config\n', { mode: 0o600 });
    fs.writeFileSync(`${configDir}/bridge.json`, JSON.stringify({ server: relay.url, tokenFile: 'token', transport: 'ws' }));
    const child = spawn(process.execPath, [cli], { env: { PATH: process.env.PATH ?? '', HOME: dir, XDG_CONFIG_HOME: `${dir}/xdg` } });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const peer = await relay.nextPeer();
      expect(peer.request.headers.authorization).toBe('Bearer token-from-config');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('exits 2 naming a key of the --config file it does not know', () => {
    const file = `${dir}/typo.json`;
    fs.writeFileSync(file, JSON.stringify({ server: relay.url, tokenfile: 'token' }));
    expect(run(['--config', file])).toMatchObject({ status: 2, stderr: expect.stringMatching(/^ctll-bridge: --config: .*typo\.json: unknown key "tokenfile"/) });
    expect(run([], { CTLL_CONFIG: file })).toMatchObject({ status: 2, stderr: expect.stringMatching(/unknown key "tokenfile"/) });
  });

  it('polls with --transport poll, and reports a relay without the polling routes', async () => {
    const child = spawn(process.execPath, [cli, '--server', relay.url, '--token', 'a', '--transport', 'poll', '--no-fallback'], {
      env: { PATH: process.env.PATH ?? '' },
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await eventually(() => stderr.includes('retrying'));
      expect(stderr).toMatch(
        new RegExp(
          `^ctll-bridge: connecting to ${relay.url} via long-poll · target http://127\\.0\\.0\\.1:11434\n` +
            'ctll-bridge: disconnected \\(the relay refused the tunnel: 404 Not Found\\); retrying in ',
        ),
      );
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('connects with CTLL_TOKEN, prints its status on stderr (nothing on stdout), and stops cleanly on SIGTERM', async () => {
    const payload = Buffer.from(JSON.stringify({ sub: 'bob' })).toString('base64url');
    const child = spawn(process.execPath, [cli, '--server', relay.url, '--target', 'http://127.0.0.1:9/base'], {
      env: { PATH: process.env.PATH ?? '', CTLL_TOKEN: `e30.${payload}.sig` },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const peer = await relay.nextPeer();
    expect(peer.request.headers.authorization).toBe(`Bearer e30.${payload}.sig`);
    // Nothing listens on port 9: once connected, the line says so (after a plain "connected" line if the probe came last).
    await eventually(() => stderr.includes('not reachable'));
    const closeCode = new Promise<number>((resolve) => peer.ws.once('close', (code) => resolve(code)));
    const exitCode = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exitCode).toBe(0);
    expect(await closeCode).toBe(1000);
    expect(stdout).toBe('');
    const lines = stderr.split('\n');
    expect(lines[0]).toBe(`ctll-bridge: connecting to ${relay.url} via WebSocket · target http://127.0.0.1:9/base`);
    expect(lines.slice(-3)).toEqual([
      `ctll-bridge: connected to ${relay.url} as bob via WebSocket · LLM server not reachable at http://127.0.0.1:9/base (connection refused) · 0 requests served`,
      'ctll-bridge: stopped · 0 requests served',
      '',
    ]);
  });

  it('prints one JSON object per line on stderr with --json, and shows each --target name=url', async () => {
    const child = spawn(
      process.execPath,
      [cli, '--server', relay.url, '--token', 'a', '--json', '--target', 'http://127.0.0.1:9', '--target', 'lms=http://127.0.0.1:9/v1'],
      { env: { PATH: process.env.PATH ?? '' } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exitCode = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await relay.nextPeer();
      await eventually(() => stderr.includes('lms: LLM server not reachable'));
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exitCode).toBe(0);
    expect(stdout).toBe('');
    const events = stderr.trimEnd().split('\n').map((line) => JSON.parse(line) as { state: string; message: string; targets?: unknown });
    expect(events[0]).toMatchObject({ state: 'connecting', targets: [{ name: 'lms', target: 'http://127.0.0.1:9/v1' }] });
    const down = events.find((event) => event.message.includes('lms: LLM server not reachable'));
    expect(down).toMatchObject({
      state: 'connected',
      targets: [{ name: 'lms', health: { up: false, error: 'connection refused' } }],
    });
    expect(events.at(-1)).toMatchObject({ state: 'closed' });
  });

  it('exits 2 naming the --target that is wrong', () => {
    const twoDefaults = run(['--server', relay.url, '--token', 'a', '--target', 'http://127.0.0.1:1', '--target', 'http://127.0.0.1:2']);
    expect(twoDefaults).toMatchObject({ status: 2, stderr: expect.stringMatching(/^ctll-bridge: --target: two unnamed targets/) });
    const badName = run(['--server', relay.url, '--token', 'a', '--target', 'lm.studio=http://127.0.0.1:1']);
    expect(badName).toMatchObject({ status: 2, stderr: expect.stringMatching(/^ctll-bridge: --target: "lm\.studio" is not a target name/) });
  });
});
