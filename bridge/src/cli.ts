/**
 * `ctll-bridge`: flags and environment in, a running bridge and its status line out.
 * This is the only module of the bridge that reads process.env; everything else gets values passed in.
 * Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 2 for a usage error, 70 after an error
 * nobody caught (logged as one JSON line on stderr; a service manager restarts the bridge),
 * 77 when restarting will not help until the user signs in again: the relay refused the credential
 * --auth-fail-exit times in a row, or the identity provider refused the stored sign-in;
 * 78 when `login` meets a relay without device login, 1 when signing in or out failed otherwise
 * (or a signed-in bridge cannot reach its identity provider at start).
 * `login`, `logout` and `whoami` live in commands/, `ctll-bridge service ...` in commands/service.ts.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { installCrashPolicy } from '@ctll/protocol';
import { startBridge, type Bridge } from './bridge';
import { runService, runningAsSingleExecutable, SERVICE_USAGE } from './commands/service';
import type { StoredCredentials } from './auth/credential-store';
import { signedInTokenSource } from './auth/signed-in';
import type { TokenSource } from './auth/token-source';
import { credentialStore, EXIT, isSubcommand, runSubcommand, SUBCOMMAND_USAGE, type CommandContext } from './commands';
import { OptionError } from './errors';
import { DEFAULT_OPTIONS, splitTargets, type BridgeOptions } from './options';
import { StatusPrinter, type StatusMode } from './status';
import { readTokenFile } from './token-file';
import { TRANSPORT_NAMES, type TransportName } from './transport';
import { VERSION } from './version';
import { ZrokShare } from './zrok';
import { bridgeConfigDir } from './config-dir';
import { CONFIG_ENV, CONFIG_FILE_NAME, mergeSettings, readConfigFile, type ConfigFile, type SettingValues } from './settings-sources';

const FLAGS = {
  server: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  target: { type: 'string', multiple: true },
  transport: { type: 'string' },
  'no-fallback': { type: 'boolean' },
  proxy: { type: 'string' },
  'zrok-url': { type: 'string' },
  'ping-timeout-ms': { type: 'string' },
  'probe-interval-ms': { type: 'string' },
  'allow-insecure': { type: 'boolean' },
  'auth-fail-exit': { type: 'string' },
  'retry-auth-forever': { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  'json-logs': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  config: { type: 'string' },
} as const;

/** The relay refused the credential --auth-fail-exit times in a row: the same code as a refused sign-in. */
const EXIT_AUTH_REFUSED = EXIT.SIGNED_OUT;
const CLI_AUTH_FAIL_EXIT = 3;

const USAGE = `Usage: ctll-bridge --server <url> --token-file <file> [options]
       ctll-bridge [options]   (after \`ctll-bridge login\`)

Connects this computer's LLM server to your CloudToLocalLLM relay, without opening a port.

  --server <url>           the relay, e.g. https://relay.example.com (required)
  --token <jwt>            your access token (or set CTLL_TOKEN); visible to other users
                           of this computer in the process list: prefer --token-file
  --token-file <path>      read the token or relay key from this file (or set CTLL_TOKEN_FILE)
  --target <url>           the local LLM server (default ${DEFAULT_OPTIONS.target})
  --target <name>=<url>    one more local server, reached through /api/tunnel/<user>/t/<name>/...
                           (may repeat, e.g. --target lmstudio=http://127.0.0.1:1234)
  --transport ws|poll      how to reach the relay (default ${DEFAULT_OPTIONS.transport}); poll uses plain
                           HTTP requests only, for networks that block WebSockets
  --no-fallback            with ws: never switch to polling (by default the bridge polls
                           while WebSockets seem blocked, and tries them again every ${DEFAULT_OPTIONS.wsRetryMs / 60_000} min)
  --zrok-url <url>         also offer this zrok share of --target (https://<token>.share.zrok.io):
                           the relay uses it while no tunnel is connected
  --proxy <url>            HTTP(S) or SOCKS proxy for the relay connection (http://, socks5://,
                           socks5h://, socks4://)
                           (default: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, minus NO_PROXY)
  --ping-timeout-ms <ms>   silence after which the tunnel counts as dead (default ${DEFAULT_OPTIONS.pingTimeoutMs})
  --probe-interval-ms <ms> how often to check that the target answers (default ${DEFAULT_OPTIONS.probeIntervalMs}; 0: never)
  --allow-insecure         accept an http:// relay that is not on this computer (the token
                           then crosses the network unencrypted)
  --auth-fail-exit <n>     exit with code ${EXIT_AUTH_REFUSED} after the relay refused the token n times
                           in a row (default ${CLI_AUTH_FAIL_EXIT}); network failures are always retried
  --retry-auth-forever     never exit because the token was refused
  -q, --quiet              print nothing but fatal errors
  --json                   status as one JSON object per line instead of the status line
                           (--json-logs is the same)
  -h, --help               show this help
  -v, --version            show the version
  --config <path>          read settings from this JSON file (or set ${CONFIG_ENV}; default
                           ${CONFIG_FILE_NAME} in the config directory, if it exists)

Every flag also has an environment variable (--ping-timeout-ms is CTLL_PING_TIMEOUT_MS) and,
but for --token, a key in the config file (pingTimeoutMs); flags win over the environment,
which wins over the file. A repeated flag is a list: CTLL_TARGET takes its values separated
by commas, the file's "target" a string or an array; the strongest source's list is used whole.
The status line and errors go to stderr; stdout carries only what a command was asked for
(--version, --help, whoami, service print).

${SUBCOMMAND_USAGE}
${SERVICE_USAGE}`;

/** A mistake on the command line: print it and exit 2. */
class UsageError extends Error {}

function main(argv: string[]): void {
  if (argv[0] === 'service') return runServiceCommand(argv.slice(1));
  if (isSubcommand(argv[0])) {
    void runSubcommand(argv[0], argv.slice(1), commandContext()).then((code) => process.exit(code));
    return;
  }
  let values;
  try {
    values = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    return usageExit((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.version) {
    process.stdout.write(`ctll-bridge ${VERSION}\n`);
    return;
  }
  try {
    values = withOtherSources(values);
  } catch (error) {
    if (error instanceof OptionError) return usageExit(error.message);
    throw error;
  }

  const mode: StatusMode = values.quiet ? 'quiet' : values.json || values['json-logs'] ? 'json' : 'text';
  const printer = new StatusPrinter(mode, process.stderr);
  let token: string | undefined;
  try {
    // The credential from flags, CTLL_* or bridge.json (settings-sources.ts), then the stored sign-in.
    token = readToken(values.token, values['token-file'], printer);
  } catch (error) {
    if (error instanceof OptionError) return usageExit(error.message);
    throw error;
  }
  const signIn = token === undefined ? storedSignIn() : undefined;
  if (signIn) return void runSignedIn(values, signIn, printer);
  run(values, { token: token ?? '' }, printer);
}

type Values = ReturnType<typeof parseArgs<{ args: string[]; options: typeof FLAGS }>>['values'];

/** No --token and no CTLL_TOKEN, but a stored sign-in (`ctll-bridge login`): its refreshing token source. */
async function runSignedIn(values: Values, signIn: StoredCredentials, printer: StatusPrinter): Promise<void> {
  if (values.server !== undefined && values.server.replace(/\/+$/, '') !== signIn.server) {
    return usageExit(`--server: signed in to ${signIn.server}, not ${values.server}; run ctll-bridge login --server ${values.server}`);
  }
  // The bridge starts once the source exists; a refusal may come before or after that.
  const started: { bridge?: Bridge } = {};
  let source: TokenSource;
  try {
    source = await signedInTokenSource(credentialStore(commandContext()), signIn, {
      onNotice: (message) => printer.notice(message),
      onSignedOut: (error) => {
        printer.error(error.message);
        void (started.bridge?.close() ?? Promise.resolve()).finally(() => process.exit(EXIT.SIGNED_OUT));
      },
    });
  } catch (error) {
    printer.error(`cannot reach the identity provider ${signIn.issuer} (${(error as Error).message})`);
    process.exit(EXIT.FAILED);
  }
  started.bridge = run({ ...values, server: signIn.server }, { tokenSource: source }, printer);
}

function run(values: Values, auth: { token: string } | { tokenSource: TokenSource }, printer: StatusPrinter): Bridge | undefined {
  let bridge: Bridge;
  let share: ZrokShare | undefined;
  try {
    const options: BridgeOptions = {
      server: values.server ?? '',
      token: 'token' in auth ? auth.token : '',
      tokenSource: 'tokenSource' in auth ? auth.tokenSource : undefined,
      ...splitTargets(values.target ?? []),
      transport: parseTransport(values.transport),
      fallback: !values['no-fallback'],
      proxy: values.proxy,
      proxyEnv: {
        httpsProxy: envValue('https_proxy'),
        httpProxy: envValue('http_proxy'),
        allProxy: envValue('all_proxy'),
        noProxy: envValue('no_proxy'),
      },
      pingTimeoutMs: parseMs('--ping-timeout-ms', values['ping-timeout-ms']),
      probeIntervalMs: parseMs('--probe-interval-ms', values['probe-interval-ms']),
      allowInsecure: values['allow-insecure'],
      authFailExit: values['retry-auth-forever'] ? 0 : (parseCount('--auth-fail-exit', values['auth-fail-exit']) ?? CLI_AUTH_FAIL_EXIT),
      onGiveUp: (error) => {
        printer.error(
          `${error.message}; stopped.\n` +
            'Sign in again with `ctll-bridge login`, or give a valid token or relay key (--token-file); ' +
            '--retry-auth-forever keeps trying instead.',
        );
        void share?.close();
        process.exit(EXIT_AUTH_REFUSED);
      },
      onStatus: (status) => printer.status(status),
      onNotice: (message) => printer.notice(message),
    };
    const zrokUrl = values['zrok-url'];
    share = zrokUrl === undefined ? undefined : new ZrokShare({ ...options, publicUrl: zrokUrl });
    bridge = startBridge(options);
    share?.start();
  } catch (error) {
    if (error instanceof UsageError || error instanceof OptionError) return void usageExit(error.message);
    throw error;
  }
  if (bridge.proxy) printer.notice(`reaching the relay through the proxy ${bridge.proxy}`);

  let stopping = false;
  const stop = () => {
    // A second Ctrl-C does not wait for the relay to acknowledge the close.
    if (stopping) process.exit(0);
    stopping = true;
    void Promise.all([bridge.close(), share?.close()]).finally(() => {
      printer.endLine();
      process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return bridge;
}

function commandContext(): CommandContext {
  return { env: process.env, stdout: process.stdout, stderr: process.stderr, platform: process.platform };
}

/** The service subcommand gets the environment it needs as values: it reads no process.env itself. */
function runServiceCommand(argv: string[]): void {
  const code = runService(argv, {
    platform: process.platform,
    env: { HOME: process.env.HOME, XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME, APPDATA: process.env.APPDATA, USERPROFILE: process.env.USERPROFILE },
    execPath: process.execPath,
    script: runningAsSingleExecutable() ? undefined : process.argv[1],
    cwd: process.cwd(),
    checkBridgeArgs: (args) => parseArgs({ args, options: FLAGS, strict: true, allowPositionals: false }).values,
    stdout: process.stdout,
    stderr: process.stderr,
  });
  process.exitCode = code;
}

/** The sign-in `login` stored; without a home directory (a bare service environment) there is none to find. */
function storedSignIn(): StoredCredentials | undefined {
  let store;
  try {
    store = credentialStore(commandContext());
  } catch {
    return undefined;
  }
  return store.read();
}

/** The flags completed from CTLL_* variables and the config file (settings-sources.ts). */
function withOtherSources<T extends SettingValues>(flags: T): T {
  const env = process.env;
  const explicit = flags.config ?? (env[CONFIG_ENV] || undefined);
  const file = typeof explicit === 'string' ? readConfigFile(explicit, true) : defaultConfigFile();
  return mergeSettings({ flags, env, file }) as T;
}

/** bridge.json in the config directory, if there is one; without a home directory, none. */
function defaultConfigFile(): ConfigFile | undefined {
  let dir: string;
  try {
    dir = bridgeConfigDir(process.platform, process.env);
  } catch {
    return undefined;
  }
  return readConfigFile(path.join(dir, CONFIG_FILE_NAME), false);
}

/** --token wins over --token-file given in the same place. */
function readToken(token: string | undefined, file: string | undefined, printer: StatusPrinter): string | undefined {
  if (token !== undefined || file === undefined) return token;
  const read = readTokenFile(file);
  if (read.warning) printer.notice(read.warning);
  return read.token;
}

function parseCount(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag}: "${value}" is not a whole number`);
  return Number(value);
}

function parseTransport(value: string | undefined): TransportName | undefined {
  if (value === undefined) return undefined;
  if (!(TRANSPORT_NAMES as readonly string[]).includes(value)) {
    throw new UsageError(`--transport: "${value}" is not a transport (expected ${TRANSPORT_NAMES.join(' or ')})`);
  }
  return value as TransportName;
}

function parseMs(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag}: "${value}" is not a whole number of milliseconds`);
  return Number(value);
}

/** Proxy variables exist in both cases; like curl, the lower-case one wins. */
function envValue(lowerName: string): string | undefined {
  return process.env[lowerName] ?? process.env[lowerName.toUpperCase()];
}

function usageExit(message: string): void {
  process.stderr.write(`ctll-bridge: ${message}\nRun ctll-bridge --help for the flags.\n`);
  process.exit(2);
}

installCrashPolicy('ctll-bridge');
main(process.argv.slice(2));
