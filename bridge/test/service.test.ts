/**
 * `ctll-bridge service ...` as a person runs it: the bundled CLI in a child process, with HOME,
 * XDG_CONFIG_HOME and XDG_RUNTIME_DIR in a scratch directory, and --no-enable so nothing is
 * handed to this machine's service manager. systemd's own checker reads the unit it writes.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundle } from './helpers';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2VjcmV0LXNpZ25hdHVyZQ';

let cli: string;
let bundleDir: string;
let scratch: string;
let env: Record<string, string>;
let tokenFile: string;

beforeAll(async () => {
  ({ file: cli, dir: bundleDir } = await bundle('bridge/src/cli.ts', 'cli.js'));
});

beforeEach(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-service-'));
  for (const dir of ['home', 'config', 'run']) fs.mkdirSync(path.join(scratch, dir), { mode: 0o700 });
  env = {
    PATH: process.env.PATH ?? '',
    HOME: path.join(scratch, 'home'),
    XDG_CONFIG_HOME: path.join(scratch, 'config'),
    XDG_RUNTIME_DIR: path.join(scratch, 'run'),
  };
  // A directory with a space and a file name with a systemd specifier (%h) in it: both must reach the bridge as they are.
  const keys = path.join(scratch, 'home', 'my keys');
  fs.mkdirSync(keys);
  tokenFile = path.join(keys, 'relay%h.key');
  fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
});

afterEach(() => fs.rmSync(scratch, { recursive: true, force: true }));
afterAll(() => fs.rmSync(bundleDir, { recursive: true, force: true }));

function ctll(args: string[], cwd = scratch) {
  return spawnSync(process.execPath, [cli, ...args], { cwd, env, encoding: 'utf8', timeout: 10_000 });
}

const unitFile = () => path.join(scratch, 'config', 'systemd', 'user', 'ctll-bridge.service');

describe('ctll-bridge service', () => {
  it('install writes a systemd user unit that systemd-analyze verify accepts and that holds no token', () => {
    const installed = ctll(['service', 'install', '--server', 'https://relay.example.com', '--token-file', 'home/my keys/relay%h.key', '--no-enable']);
    expect(installed.status).toBe(0);
    // What it did and what to do next are status (stderr); there is no data to print.
    expect(installed.stdout).toBe('');
    expect(installed.stderr).toContain(`wrote ${unitFile()}`);
    expect(installed.stderr).toContain('systemctl --user enable ctll-bridge\n  systemctl --user restart ctll-bridge\n');

    const unit = fs.readFileSync(unitFile(), 'utf8');
    expect(unit).not.toContain(TOKEN);
    // The relative --token-file became absolute, quoted for the space, % doubled so systemd keeps it literal.
    expect(unit).toContain(
      `ExecStart=${process.execPath} ${cli} --server https://relay.example.com --token-file "${tokenFile.replace('%', '%%')}"\n`,
    );
    // The service finds the stored login where this shell would.
    expect(unit).toContain(`Environment=XDG_CONFIG_HOME=${env.XDG_CONFIG_HOME}\n`);
    expect(unit).toContain('RestartPreventExitStatus=2 77\n');

    const verified = spawnSync('systemd-analyze', ['verify', '--user', unitFile()], { env, encoding: 'utf8' });
    expect(verified.error).toBeUndefined();
    expect({ status: verified.status, stderr: verified.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('refuses --token, since the unit would show it, and writes nothing', () => {
    const refused = ctll(['service', 'install', '--server', 'https://relay.example.com', '--token', TOKEN, '--no-enable']);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/^ctll-bridge: service: --token would be written into the service definition/);
    expect(refused.stderr).toContain('--token-file <path>');
    expect(refused.stderr).not.toContain(TOKEN);
    expect(fs.existsSync(unitFile())).toBe(false);
  });

  it('refuses a token file it cannot read, and a flag the bridge does not know', () => {
    const missing = ctll(['service', 'install', '--server', 'https://relay.example.com', '--token-file', 'nowhere.key', '--no-enable']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--token-file: cannot read .*nowhere\.key \(ENOENT\)/);
    const unknown = ctll(['service', 'install', '--sever', 'https://relay.example.com', '--no-enable']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '--sever'/);
    expect(fs.existsSync(unitFile())).toBe(false);
  });

  it('without --token-file, points at the stored login and puts no credential flag in the unit', () => {
    const installed = ctll(['service', 'install', '--server', 'https://relay.example.com', '--no-enable']);
    expect(installed.status).toBe(0);
    expect(installed.stderr).toContain(`uses the login stored in ${path.join(env.XDG_CONFIG_HOME, 'ctll')}`);
    expect(fs.readFileSync(unitFile(), 'utf8')).toMatch(/^ExecStart=\S+ \S+ --server https:\/\/relay\.example\.com$/m);
  });

  it('status says whether it is installed, and uninstall removes the unit', () => {
    expect(ctll(['service', 'status'])).toMatchObject({ status: 3, stdout: expect.stringMatching(/^not installed/) });
    expect(ctll(['service', 'install', '--server', 'https://relay.example.com', '--no-enable']).status).toBe(0);
    const removed = ctll(['service', 'uninstall', '--no-enable']);
    expect(removed).toMatchObject({ status: 0, stdout: '', stderr: `removed ${unitFile()}\n` });
    expect(fs.existsSync(unitFile())).toBe(false);
  });

  it('prints a launchd agent for macOS and a logon task for Windows, neither holding a token', () => {
    const plist = ctll(['service', 'print', '--platform', 'darwin', '--server', 'https://relay.example.com', '--token-file', tokenFile]);
    expect(plist.status).toBe(0);
    expect(plist.stdout).toContain(`# ${path.join(env.HOME, 'Library/LaunchAgents/com.cloudtolocalllm.bridge.plist')}\n`);
    expect(plist.stdout).toContain(
      `  <key>ProgramArguments</key>\n  <array>\n    <string>${process.execPath}</string>\n    <string>${cli}</string>\n` +
        `    <string>--server</string>\n    <string>https://relay.example.com</string>\n` +
        `    <string>--token-file</string>\n    <string>${tokenFile}</string>\n  </array>\n`,
    );
    expect(plist.stdout).not.toContain(TOKEN);

    const windows = ctll(['service', 'print', '--platform', 'win32', '--server', 'https://relay.example.com', '--token-file', 'C:\\Users\\me\\relay.key']);
    expect(windows.status).toBe(0);
    expect(windows.stdout).toMatch(/^schtasks\.exe \/Create \/F \/TN ctll-bridge \/SC ONLOGON \/RL LIMITED \/TR ".*--server https:\/\/relay\.example\.com --token-file C:\\Users\\me\\relay\.key"\n$/);
    expect(windows.stdout).not.toContain(TOKEN);
    // print writes nothing.
    expect(fs.existsSync(path.join(env.HOME, 'Library'))).toBe(false);
  });

  it('names the actions when given none or a wrong one', () => {
    expect(ctll(['service'])).toMatchObject({ status: 2, stderr: expect.stringMatching(/^ctll-bridge: service: which action\? install, uninstall, status or print/) });
    expect(ctll(['service', 'start'])).toMatchObject({ status: 2, stderr: expect.stringMatching(/"start" is not an action/) });
  });
});
