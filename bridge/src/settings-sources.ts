/**
 * Where each bridge setting may come from besides its flag: one table of flag → CTLL_* variable →
 * key in bridge.json, and the merge of the three with flags > environment > file. The result has the
 * shape parseArgs gives, so the CLI checks a value the same way wherever it came from. The CLI
 * passes the environment and file in; nothing here reads process.env.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { OptionError } from './errors';

/** `list`: a flag that may repeat; a comma-separated variable; a string or an array of strings in the file. */
type Kind = 'string' | 'boolean' | 'count' | 'list';

interface Setting {
  flag: string;
  env: string;
  /** The key in bridge.json; absent when the setting may not be written in the file. */
  key?: string;
  kind: Kind;
}

/**
 * Every flag that configures a run. `--token` has no file key on purpose: a config file gets
 * copied, shared and backed up, so the file names a `tokenFile` instead (a relative path there is
 * relative to the config file).
 */
export const SETTINGS: readonly Setting[] = Object.freeze([
  { flag: 'server', env: 'CTLL_SERVER', key: 'server', kind: 'string' },
  { flag: 'token', env: 'CTLL_TOKEN', kind: 'string' },
  { flag: 'token-file', env: 'CTLL_TOKEN_FILE', key: 'tokenFile', kind: 'string' },
  { flag: 'target', env: 'CTLL_TARGET', key: 'target', kind: 'list' },
  { flag: 'transport', env: 'CTLL_TRANSPORT', key: 'transport', kind: 'string' },
  { flag: 'no-fallback', env: 'CTLL_NO_FALLBACK', key: 'noFallback', kind: 'boolean' },
  { flag: 'proxy', env: 'CTLL_PROXY', key: 'proxy', kind: 'string' },
  { flag: 'zrok-url', env: 'CTLL_ZROK_URL', key: 'zrokUrl', kind: 'string' },
  { flag: 'ping-timeout-ms', env: 'CTLL_PING_TIMEOUT_MS', key: 'pingTimeoutMs', kind: 'count' },
  { flag: 'probe-interval-ms', env: 'CTLL_PROBE_INTERVAL_MS', key: 'probeIntervalMs', kind: 'count' },
  { flag: 'allow-insecure', env: 'CTLL_ALLOW_INSECURE', key: 'allowInsecure', kind: 'boolean' },
  { flag: 'auth-fail-exit', env: 'CTLL_AUTH_FAIL_EXIT', key: 'authFailExit', kind: 'count' },
  { flag: 'retry-auth-forever', env: 'CTLL_RETRY_AUTH_FOREVER', key: 'retryAuthForever', kind: 'boolean' },
  { flag: 'quiet', env: 'CTLL_QUIET', key: 'quiet', kind: 'boolean' },
  { flag: 'json', env: 'CTLL_JSON', key: 'json', kind: 'boolean' },
  // The older name of --json, still understood.
  { flag: 'json-logs', env: 'CTLL_JSON_LOGS', key: 'jsonLogs', kind: 'boolean' },
]);

/** `--config <path>` / CTLL_CONFIG: a file that must exist; without either, bridge.json in the config directory if it exists. */
export const CONFIG_ENV = 'CTLL_CONFIG';
export const CONFIG_FILE_NAME = 'bridge.json';

/** The token and its file are one choice: the strongest source that names either decides. */
const CREDENTIAL_FLAGS = ['token', 'token-file'];

export type SettingValues = Record<string, string | string[] | boolean | undefined>;

export interface SettingSources {
  /** What parseArgs returned for the command line. */
  flags: SettingValues;
  env: Record<string, string | undefined>;
  /** The config file's contents as read by readConfigFile (undefined: no file). */
  file?: ConfigFile;
}

export interface ConfigFile {
  path: string;
  values: SettingValues;
}

const SCHEMAS: Record<Kind, z.ZodType> = {
  string: z.string(),
  boolean: z.boolean(),
  count: z.number().int().nonnegative(),
  list: z.union([z.string(), z.array(z.string()).min(1).max(64)]),
};

const fileSchema = z.strictObject(
  Object.fromEntries(
    SETTINGS.filter((setting) => setting.key !== undefined).map((setting) => [
      setting.key as string,
      SCHEMAS[setting.kind].optional(),
    ]),
  ),
);

/**
 * Reads and checks a config file. `required` is false for the default location, where no file is
 * the normal case. Unknown keys are an error naming them: a misspelt key silently ignored is a
 * setting the person believes is in force.
 */
export function readConfigFile(file: string, required: boolean): ConfigFile | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!required && code === 'ENOENT') return undefined;
    throw new OptionError('--config', `cannot read ${file} (${code ?? (error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new OptionError('--config', `${file} is not valid JSON (${(error as Error).message})`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) throw new OptionError('--config', `${file}: ${describeIssue(parsed.error.issues[0])}`);
  const values: SettingValues = {};
  for (const setting of SETTINGS) {
    const value = setting.key === undefined ? undefined : parsed.data[setting.key];
    if (value === undefined) continue;
    if (setting.flag === 'token-file') values[setting.flag] = path.resolve(path.dirname(file), value as string);
    else if (setting.kind === 'list') values[setting.flag] = typeof value === 'string' ? [value] : (value as string[]);
    else values[setting.flag] = typeof value === 'number' ? String(value) : (value as string | boolean);
  }
  return { path: file, values };
}

function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'is not valid';
  if (issue.code === 'unrecognized_keys') {
    const token = issue.keys.includes('token') ? ' (write the token in a file of its own and name it with "tokenFile")' : '';
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `"${key}"`).join(', ')}${token}`;
  }
  if (issue.path.length === 0) return 'must hold a JSON object';
  return `"${issue.path.join('.')}": ${issue.message}`;
}

/**
 * Flags > environment > file, setting by setting; the credential pair as one setting. A list comes
 * whole from the strongest source that has it: targets from a flag replace the file's, never add to them.
 */
export function mergeSettings(sources: SettingSources): SettingValues {
  const fromEnv = envValues(sources.env);
  const layers = [sources.flags, fromEnv, sources.file?.values ?? {}];
  const merged: SettingValues = { ...sources.flags };
  for (const setting of SETTINGS) {
    if (CREDENTIAL_FLAGS.includes(setting.flag)) continue;
    merged[setting.flag] = layers.map((layer) => layer[setting.flag]).find((value) => value !== undefined);
  }
  const credential = layers.find((layer) => CREDENTIAL_FLAGS.some((flag) => layer[flag] !== undefined)) ?? {};
  for (const flag of CREDENTIAL_FLAGS) merged[flag] = credential[flag];
  return merged;
}

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off', ''];

/** The CTLL_* variables that are set, as flag values; a boolean variable must say yes or no. */
function envValues(env: Record<string, string | undefined>): SettingValues {
  const values: SettingValues = {};
  for (const setting of SETTINGS) {
    const raw = env[setting.env];
    if (raw === undefined) continue;
    if (setting.kind === 'list') {
      const items = raw.split(',').map((item) => item.trim()).filter((item) => item !== '');
      if (items.length > 0) values[setting.flag] = items;
      continue;
    }
    if (setting.kind !== 'boolean') {
      // An empty variable (`CTLL_PROXY=`) is how a shell unsets it for one command: not a value.
      if (raw !== '') values[setting.flag] = raw;
      continue;
    }
    const word = raw.trim().toLowerCase();
    if (TRUE.includes(word)) values[setting.flag] = true;
    else if (FALSE.includes(word)) values[setting.flag] = false;
    else throw new OptionError(setting.env, `"${raw}" is neither true (1, true, yes) nor false (0, false, no)`);
  }
  return values;
}
