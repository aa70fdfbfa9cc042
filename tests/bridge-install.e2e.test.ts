/**
 * The bridge as a person installs it: the tarball `npm pack` makes, installed globally into an
 * empty prefix and run with nothing but Node (no repository, no node_modules around it); and the
 * single executable, run with no Node at all on its PATH. Both connect to a real relay and carry a
 * streamed chat from the slow test model. Everything is built once, in beforeAll.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ollama } from 'ollama';
import { startLayout, waitFor, type Layout } from './helpers/layout';

const ROOT = path.resolve(__dirname, '..');

let layout: Layout;
let scratch: string;
let tarball: string;
let installedBin: string;
let singleExecutable: string;
let tokenFile: string;
const user = 'installer@example.com';

beforeAll(async () => {
  layout = await startLayout({ llm: { tokenDelayMs: 200, tokens: 6 } });
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-install-'));
  // npm's own settings from the jest run (npm test exports npm_config_*) must not leak in.
  const npmEnv = { PATH: process.env.PATH ?? '', HOME: scratch, npm_config_cache: path.join(scratch, 'npm-cache') };
  execFileSync('npm', ['pack', '--workspace', 'bridge', '--pack-destination', scratch, '--silent'], { cwd: ROOT, env: npmEnv, stdio: 'pipe' });
  tarball = path.join(scratch, fs.readdirSync(scratch).find((name) => /^ctll-bridge-.*\.tgz$/.test(name))!);
  const prefix = path.join(scratch, 'prefix');
  execFileSync('npm', ['install', '--global', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball], { cwd: scratch, env: npmEnv, stdio: 'pipe' });
  installedBin = path.join(prefix, 'bin', 'ctll-bridge');
  singleExecutable = path.join(scratch, 'ctll-bridge-sea');
  execFileSync('bash', [path.join(ROOT, 'scripts/build-bridge-sea.sh'), singleExecutable], { cwd: ROOT, env: npmEnv, stdio: 'pipe' });
  tokenFile = path.join(scratch, 'token');
  fs.writeFileSync(tokenFile, `${layout.token(user)}\n`, { mode: 0o600 });
}, 240_000);

afterAll(async () => {
  await layout?.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

/** PATH with node on it and nothing of the repository; HOME in the scratch directory. */
function nodeOnlyEnv(): Record<string, string> {
  return { PATH: `${path.dirname(installedBin)}:${path.dirname(process.execPath)}`, HOME: scratch };
}

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function run(program: string, args: string[], env: Record<string, string>): Running {
  const child = spawn(program, args, { cwd: scratch, env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Starts the bridge, streams one chat through the relay to the test model, and stops it with SIGTERM. */
async function connectAndStream(program: string, env: Record<string, string>, testId: string): Promise<void> {
  const bridge = run(program, ['--server', layout.relay.url, '--token-file', tokenFile, '--target', layout.llm.url], env);
  try {
    await waitFor(() => bridge.stderr().includes('connected to'), 20_000, `the bridge to connect (stderr: ${bridge.stderr()})`);
    expect(bridge.stderr()).toContain(`connected to ${layout.relay.url} as ${user} via WebSocket`);
    const ollama = new Ollama({ host: layout.tunnelUrl(user), headers: { authorization: `Bearer ${layout.token(user)}`, 'x-test-id': testId } });
    const arrivals: number[] = [];
    let text = '';
    for await (const part of await ollama.chat({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_predict: 6 } })) {
      arrivals.push(Date.now());
      text += part.message.content;
    }
    expect(text).toBe('tok0 tok1 tok2 tok3 tok4 tok5 ');
    // Streamed, not buffered: the first token was here before the model wrote its last.
    expect(arrivals[0]).toBeLessThan(layout.llm.finishedAt.get(testId)!);
  } finally {
    bridge.child.kill('SIGTERM');
  }
  expect(await bridge.exited).toBe(0);
  // Status lines on stderr and nothing else there: no warnings either (a single executable that
  // tried to load ws's native add-on would print one). Nothing on stdout, which is for data.
  expect(bridge.stdout()).toBe('');
  expect(bridge.stderr().split('\n').filter((line) => line !== '' && !line.startsWith('ctll-bridge: '))).toEqual([]);
}

describe('ctll-bridge installed from its npm tarball', () => {
  it('packs one bundled file, a README and no dependencies to fetch', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n').sort();
    expect(files).toEqual(['package/README.md', 'package/dist/cli.js', 'package/package.json']);
    const manifest = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }));
    expect(manifest).toMatchObject({ name: 'ctll-bridge', bin: { 'ctll-bridge': 'dist/cli.js' }, engines: { node: expect.any(String) } });
    expect(manifest.private).toBeUndefined();
    expect(manifest.dependencies).toBeUndefined();
  });

  it('prints its version with only Node on the PATH, installed or through npx', () => {
    const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'bridge/package.json'), 'utf8')).version;
    expect(execFileSync(installedBin, ['--version'], { cwd: scratch, env: nodeOnlyEnv(), encoding: 'utf8' })).toBe(`ctll-bridge ${version}\n`);
    const npx = execFileSync('npm', ['exec', '--yes', '--offline', '--package', tarball, '--', 'ctll-bridge', '--version'], {
      cwd: scratch,
      env: { ...nodeOnlyEnv(), npm_config_cache: path.join(scratch, 'npm-cache') },
      encoding: 'utf8',
    });
    expect(npx).toBe(`ctll-bridge ${version}\n`);
  });

  it('connects to the relay and streams a chat from the model', async () => {
    await connectAndStream(installedBin, nodeOnlyEnv(), 'npm-installed');
  });

  it('stops with exit code 77 and says to sign in again after the relay refused its token three times', async () => {
    const badToken = path.join(scratch, 'bad-token');
    fs.writeFileSync(badToken, 'not-a-valid-token\n', { mode: 0o600 });
    // Short backoff steps are not a flag; three refusals take 1 + 2 s of waiting.
    const bridge = run(installedBin, ['--server', layout.relay.url, '--token-file', badToken, '--target', layout.llm.url], nodeOnlyEnv());
    const code = await bridge.exited;
    expect(code).toBe(77);
    // After the status lines (stderr too), the reason it stopped; stdout stays empty.
    expect(bridge.stderr()).toMatch(/\nctll-bridge: the relay refused the token: 401 .*\(3 times in a row\); stopped\.\n/);
    expect(bridge.stdout()).toBe('');
    expect(bridge.stderr()).toContain('Sign in again with `ctll-bridge login`');
  }, 30_000);
});

describe('ctll-bridge as a single executable', () => {
  it('connects to the relay and streams a chat with no Node on the PATH', async () => {
    expect(() => execFileSync('node', ['--version'], { env: { PATH: '/nonexistent' }, stdio: 'pipe' })).toThrow();
    await connectAndStream(singleExecutable, { PATH: '/nonexistent', HOME: scratch }, 'single-executable');
  });
});
