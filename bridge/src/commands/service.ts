/**
 * `ctll-bridge service install|uninstall|status|print`: run the bridge with the person's session
 * and keep it running. The bridge's own flags after the action go into the service's command line
 * as given, except that --token is refused (a unit file or the process list would show it) and
 * --token-file is made absolute. Without --token-file the service uses the stored login.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { bridgeConfigDir, homeDir, pathFor, userConfigBase, type HomeEnv } from '../config-dir';
import { OptionError } from '../errors';
import { readTokenFile } from '../token-file';
import { LAUNCHD_LABEL, launchdPlist, SERVICE_NAME, systemdUnit, windowsCommands, type ServiceSpec } from './service-units';

export const SERVICE_USAGE = `Run at login, as a service:
  ctll-bridge service install [bridge flags] [--no-enable]
                           Linux: writes a systemd user unit and enables it (systemctl --user);
                           macOS: writes a launchd agent and loads it; Windows: prints the
                           Task Scheduler command to run. The service uses the login stored
                           by \`ctll-bridge login\`, or --token-file <path>; never --token.
  ctll-bridge service uninstall [--no-enable]   stops it and removes what install wrote
  ctll-bridge service status                    where it is installed and whether it runs
  ctll-bridge service print [--platform linux|darwin|win32] [bridge flags]
                           shows what install would write, and changes nothing
`;

export interface ServiceContext {
  platform: NodeJS.Platform;
  env: HomeEnv;
  /** The running program: node, or the single executable itself. */
  execPath: string;
  /** The script node runs (dist/cli.js or the npm bin link); undefined for the single executable. */
  script: string | undefined;
  cwd: string;
  /** Parses the bridge's flags as the bridge would (throws on an unknown one); returns their values. */
  checkBridgeArgs(args: string[]): Record<string, unknown>;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Runs systemctl or launchctl; the status it exited with. Tests never get this far (--no-enable). */
  run?(program: string, args: string[]): number | null;
}

const OWN_FLAGS = {
  'no-enable': { type: 'boolean' },
  platform: { type: 'string' },
} as const;

const PLATFORMS: readonly NodeJS.Platform[] = ['linux', 'darwin', 'win32'];

class ServiceUsageError extends Error {}

/** Runs one action; returns the exit code (0, 1 when systemctl/launchctl failed, 2 for a usage error). */
export function runService(argv: string[], context: ServiceContext): number {
  const [action, ...rest] = argv;
  try {
    const { own, bridgeArgs } = splitArgs(rest);
    const platform = own.platform === undefined ? context.platform : parsePlatform(own.platform, action);
    const enable = !own['no-enable'];
    switch (action) {
      case 'install':
        return install(platform, specFor(platform, bridgeArgs, context), enable, context);
      case 'print':
        return print(platform, specFor(platform, bridgeArgs, context), context);
      case 'uninstall':
        noBridgeArgs(action, bridgeArgs);
        return uninstall(platform, enable, context);
      case 'status':
        noBridgeArgs(action, bridgeArgs);
        return status(platform, context);
      default:
        throw new ServiceUsageError(action === undefined ? 'service: which action? install, uninstall, status or print' : `service: "${action}" is not an action (install, uninstall, status or print)`);
    }
  } catch (error) {
    if (!(error instanceof ServiceUsageError || error instanceof OptionError || isParseArgsError(error))) throw error;
    context.stderr.write(`ctll-bridge: ${(error as Error).message}\n\n${SERVICE_USAGE}`);
    return 2;
  }
}

/** node:util's parseArgs throws these for an unknown flag or a missing value. */
function isParseArgsError(error: unknown): boolean {
  return String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
}

/** Our own flags out, the bridge's flags left in the order given. */
function splitArgs(args: string[]): { own: { 'no-enable'?: boolean; platform?: string }; bridgeArgs: string[] } {
  const parsed = parseArgs({ args, options: OWN_FLAGS, strict: false, allowPositionals: true, tokens: true });
  const ownIndexes = new Set<number>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option' || !(token.name in OWN_FLAGS)) continue;
    ownIndexes.add(token.index);
    if (token.value !== undefined && !token.inlineValue) ownIndexes.add(token.index + 1);
  }
  const own = parsed.values as { 'no-enable'?: boolean; platform?: string };
  if (own.platform !== undefined && typeof own.platform !== 'string') throw new ServiceUsageError('--platform: which one? linux, darwin or win32');
  return { own, bridgeArgs: args.filter((_, index) => !ownIndexes.has(index)) };
}

function parsePlatform(value: string, action: string | undefined): NodeJS.Platform {
  if (action !== 'print') throw new ServiceUsageError('--platform only goes with `service print`');
  if (!PLATFORMS.includes(value as NodeJS.Platform)) throw new ServiceUsageError(`--platform: "${value}" is not linux, darwin or win32`);
  return value as NodeJS.Platform;
}

function noBridgeArgs(action: string, args: string[]): void {
  if (args.length > 0) throw new ServiceUsageError(`service ${action}: unexpected ${args[0]}`);
}

/** The service's command line: this very program, with the bridge's flags checked and made independent of the current directory. */
function specFor(platform: NodeJS.Platform, bridgeArgs: string[], context: ServiceContext): ServiceSpec {
  const values = context.checkBridgeArgs(bridgeArgs);
  if (values.token !== undefined) {
    throw new ServiceUsageError(
      'service: --token would be written into the service definition, where others can read it. ' +
        'Sign in with `ctll-bridge login`, or put the token in a file only you can read and pass --token-file <path>',
    );
  }
  for (const flag of ['help', 'version'] as const) {
    if (values[flag]) throw new ServiceUsageError(`service: --${flag} makes no sense in a service`);
  }
  const p = pathFor(platform);
  const args = [...bridgeArgs];
  const fileIndex = args.findIndex((arg) => arg === '--token-file' || arg.startsWith('--token-file='));
  if (fileIndex >= 0) {
    const inline = args[fileIndex].startsWith('--token-file=');
    const given = inline ? args[fileIndex].slice('--token-file='.length) : args[fileIndex + 1];
    const absolute = p.resolve(context.cwd, given);
    // Caught now rather than by a service that fails at every boot; the token itself is not shown.
    if (platform === context.platform) readTokenFile(absolute, platform);
    if (inline) args[fileIndex] = `--token-file=${absolute}`;
    else args[fileIndex + 1] = absolute;
  }
  const program = context.script === undefined ? [context.execPath] : [context.execPath, p.resolve(context.cwd, context.script)];
  // A login stored under a custom XDG_CONFIG_HOME is found only if the service has the same one.
  const xdg = context.env.XDG_CONFIG_HOME;
  const environment: Record<string, string> = platform !== 'win32' && xdg && p.isAbsolute(xdg) ? { XDG_CONFIG_HOME: xdg } : {};
  return { command: [...program, ...args], environment };
}

function unitPath(platform: NodeJS.Platform, env: HomeEnv): string {
  const p = pathFor(platform);
  if (platform === 'darwin') return p.join(homeDir(platform, env), 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`);
  return p.join(userConfigBase(platform, env), 'systemd', 'user', `${SERVICE_NAME}.service`);
}

function launchdLog(env: HomeEnv): string {
  return pathFor('darwin').join(homeDir('darwin', env), 'Library', 'Logs', `${SERVICE_NAME}.log`);
}

function render(platform: NodeJS.Platform, spec: ServiceSpec, env: HomeEnv): string {
  if (platform === 'darwin') return launchdPlist(spec, launchdLog(env));
  if (platform === 'win32') return `${windowsCommands(spec).install}\n`;
  return systemdUnit(spec);
}

function print(platform: NodeJS.Platform, spec: ServiceSpec, context: ServiceContext): number {
  if (platform !== 'win32') context.stdout.write(`# ${unitPath(platform, context.env)}\n`);
  context.stdout.write(render(platform, spec, context.env));
  return 0;
}

function install(platform: NodeJS.Platform, spec: ServiceSpec, enable: boolean, context: ServiceContext): number {
  const loginNote = spec.command.some((arg) => arg === '--token-file' || arg.startsWith('--token-file='))
    ? ''
    : `It uses the login stored in ${bridgeConfigDir(platform, context.env)}: run \`ctll-bridge login\` first if you have not.\n`;
  if (platform === 'win32') {
    context.stdout.write(
      'Run this in a Command Prompt to start the bridge whenever you log on:\n\n' +
        `  ${windowsCommands(spec).install}\n\n${loginNote}`,
    );
    return 0;
  }
  const file = unitPath(platform, context.env);
  fs.mkdirSync(pathFor(platform).dirname(file), { recursive: true });
  fs.writeFileSync(file, render(platform, spec, context.env), { mode: 0o644 });
  // What was done, and advice, is status: stderr. stdout carries what a command was asked to print (`print`, `status`, Windows' command lines).
  context.stderr.write(`wrote ${file}\n${loginNote}`);
  const steps = platform === 'darwin' ? launchdSteps('install', file) : systemdSteps('install');
  if (!enable) return suggest(steps, context);
  // launchd refuses to bootstrap a label it already has: an earlier install is unloaded first (failing when there was none).
  if (platform === 'darwin') spawnSync(...launchdSteps('uninstall', file)[0], { stdio: 'ignore' });
  return runSteps(steps, context);
}

function uninstall(platform: NodeJS.Platform, enable: boolean, context: ServiceContext): number {
  if (platform === 'win32') {
    context.stdout.write(`Run this in a Command Prompt:\n\n  ${windowsCommands({ command: [], environment: {} }).uninstall}\n`);
    return 0;
  }
  const file = unitPath(platform, context.env);
  const steps = platform === 'darwin' ? launchdSteps('uninstall', file) : systemdSteps('uninstall');
  // Stopped before the file goes, so the service manager still knows what it is stopping.
  const code = enable && fs.existsSync(file) ? runSteps(steps.slice(0, 1), context) : 0;
  fs.rmSync(file, { force: true });
  context.stderr.write(`removed ${file}\n`);
  if (enable && platform === 'linux') runSteps(steps.slice(1), context);
  return code;
}

function status(platform: NodeJS.Platform, context: ServiceContext): number {
  if (platform === 'win32') {
    context.stdout.write(`Run this in a Command Prompt:\n\n  ${windowsCommands({ command: [], environment: {} }).status}\n`);
    return 0;
  }
  const file = unitPath(platform, context.env);
  if (!fs.existsSync(file)) {
    context.stdout.write(`not installed (no ${file}); install with: ctll-bridge service install --server <url>\n`);
    return 3;
  }
  context.stdout.write(`installed: ${file}\n`);
  const [program, args] = platform === 'darwin' ? ['launchctl', ['print', `gui/${process.getuid?.() ?? 0}/${LAUNCHD_LABEL}`]] : ['systemctl', ['--user', 'status', '--no-pager', SERVICE_NAME]];
  return (context.run ?? runInherited)(program as string, args as string[]) ?? 1;
}

type Step = [program: string, args: string[]];

function systemdSteps(action: 'install' | 'uninstall'): Step[] {
  return action === 'install'
    ? // restart, not start: installing again with other flags must replace a bridge already running.
      [['systemctl', ['--user', 'daemon-reload']], ['systemctl', ['--user', 'enable', SERVICE_NAME]], ['systemctl', ['--user', 'restart', SERVICE_NAME]]]
    : [['systemctl', ['--user', 'disable', '--now', SERVICE_NAME]], ['systemctl', ['--user', 'daemon-reload']]];
}

function launchdSteps(action: 'install' | 'uninstall', file: string): Step[] {
  const domain = `gui/${process.getuid?.() ?? 0}`;
  return action === 'install' ? [['launchctl', ['bootstrap', domain, file]]] : [['launchctl', ['bootout', `${domain}/${LAUNCHD_LABEL}`]]];
}

function runSteps(steps: Step[], context: ServiceContext): number {
  for (const [program, args] of steps) {
    const code = (context.run ?? runInherited)(program, args);
    if (code !== 0) {
      context.stderr.write(
        `ctll-bridge: \`${program} ${args.join(' ')}\` failed` +
          (program === 'systemctl' ? ' (no user session? `loginctl enable-linger` lets user services run without one)' : '') +
          '\n',
      );
      return 1;
    }
  }
  return 0;
}

function suggest(steps: Step[], context: ServiceContext): number {
  context.stderr.write(`not enabled (--no-enable); to do it yourself:\n${steps.map(([program, args]) => `  ${program} ${args.join(' ')}\n`).join('')}`);
  return 0;
}

/**
 * True inside the single executable (scripts/build-bridge-sea.sh), whose argv[1] is the path as
 * typed rather than a script. node:sea exists from Node 20.12; older Node has no single executables.
 */
export function runningAsSingleExecutable(): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('node:sea') as typeof import('node:sea')).isSea();
  } catch {
    return false;
  }
}

function runInherited(program: string, args: string[]): number | null {
  return spawnSync(program, args, { stdio: 'inherit' }).status;
}
