/**
 * api-backend's settings are declared once, in api-backend/src/config.ts (name, default, doc
 * comment). This checks the three places a reader or an operator meets them against that
 * declaration: env.template, README's settings table and the api-backend environment list of
 * docker-compose.production.yml. Every problem names the setting and the file to fix.
 *
 *   npm run settings:check
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { settingsSchema } from '../api-backend/src/config';

/** The documents, as text. */
export interface SettingsDocs {
  envTemplate: string;
  readme: string;
  compose: string;
  stack: string;
}

/** A setting's declared default as its text in an env file; undefined: none (unset means unset). */
export type Declared = Record<string, string | undefined>;

/**
 * Values the production documents set on purpose instead of the schema's development-friendly
 * default (compose runs api-backend in a container behind nginx and drives Docker).
 */
export const DEPLOYMENT_VALUES: Readonly<Record<string, string>> = {
  NODE_ENV: 'production',
  PROXY_DRIVER: 'docker',
  PROXY_NETWORK_MODE: 'container',
  TRUST_PROXY: '10.201.0.0/24',
};

/** Settings compose does not pass, each with why. */
export const NOT_IN_COMPOSE: Readonly<Record<string, string>> = {
  PROXY_SCRIPT: 'the process driver only; compose pins PROXY_DRIVER=docker',
};

const ENV_TEMPLATE = 'env.template';
const README = 'README.md';
const COMPOSE = 'docker-compose.production.yml';
// The swarm stack (./deploy.sh --swarm) passes the same settings as compose.
const STACK = 'docker-stack.yml';

/** Each setting's default, as the schema declares it. */
export function declaredSettings(): Declared {
  const defaults = settingsSchema.parse({}) as Record<string, unknown>;
  const declared: Declared = {};
  for (const name of Object.keys(settingsSchema.shape)) {
    const value = defaults[name];
    // An empty default (or an empty list) is no value at all, as unset: the documents show it as "—" or leave it empty.
    declared[name] = value === undefined || value === '' || (Array.isArray(value) && value.length === 0) ? undefined : String(value);
  }
  return declared;
}

export function checkSettings(declared: Declared, docs: SettingsDocs): string[] {
  return [
    ...checkEnvTemplate(declared, docs.envTemplate),
    ...checkReadme(declared, docs.readme),
    ...checkCompose(declared, docs.compose),
    ...checkCompose(declared, docs.stack, STACK),
  ];
}

const SETTING_LINE = /^(#?)([A-Z][A-Z0-9_]*)=(.*)$/;

/** api-backend's part of env.template: every setting, each under a comment, defaults as declared. */
export function checkEnvTemplate(declared: Declared, text: string): string[] {
  const lines = text.split('\n');
  const end = lines.findIndex((line) => /^# -+ deployment/.test(line));
  const section = end < 0 ? lines : lines.slice(0, end);
  const problems: string[] = [];
  const seen = new Set<string>();
  section.forEach((line, index) => {
    const match = SETTING_LINE.exec(line);
    if (!match) return;
    const [, commented, name, value] = match;
    seen.add(name);
    if (!(name in declared)) {
      problems.push(`${ENV_TEMPLATE}:${index + 1}: ${name} is not a setting of api-backend/src/config.ts (remove it, or move it below "# ----- deployment")`);
      return;
    }
    if (!hasCommentAbove(section, index)) problems.push(`${ENV_TEMPLATE}:${index + 1}: ${name} needs a comment line above it saying what it does`);
    if (!commented) problems.push(...defaultProblem(declared, name, value, `${ENV_TEMPLATE}:${index + 1}`));
  });
  for (const name of Object.keys(declared)) {
    if (!seen.has(name)) problems.push(`${ENV_TEMPLATE}: ${name} is missing: add "${name}=${declared[name] ?? ''}" (or "#${name}=" when unset by default) under a comment, above "# ----- deployment"`);
  }
  return problems;
}

/** A run of setting lines shares the comment above the first of them. */
function hasCommentAbove(lines: string[], index: number): boolean {
  for (let i = index - 1; i >= 0; i -= 1) {
    if (SETTING_LINE.test(lines[i])) continue;
    return /^# \S/.test(lines[i]);
  }
  return false;
}

function defaultProblem(declared: Declared, name: string, value: string, where: string): string[] {
  const expected = DEPLOYMENT_VALUES[name] ?? declared[name];
  if (expected === undefined || value === expected) return [];
  return [`${where}: ${name} is "${value}" but its default in api-backend/src/config.ts is "${expected}"`];
}

/** README's "## Configuration" table: a row for every setting, its default as declared. */
export function checkReadme(declared: Declared, text: string): string[] {
  const section = text.split(/^## Configuration$/m)[1]?.split(/^## /m)[0];
  if (section === undefined) return [`${README}: no "## Configuration" section`];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const row of section.split('\n').filter((line) => line.startsWith('| `'))) {
    const [namesCell, defaultCell, whatCell] = row.split(' | ').map((cell) => cell.replace(/^\| |\s*\|$/g, ''));
    const names = [...namesCell.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]);
    const defaults = [...(defaultCell ?? '').matchAll(/`([^`]*)`/g)].map((m) => m[1]);
    names.forEach((name, i) => {
      seen.add(name);
      if (!(name in declared)) {
        problems.push(`${README}: the settings table lists ${name}, which is not a setting of api-backend/src/config.ts`);
        return;
      }
      if (!whatCell?.trim()) problems.push(`${README}: ${name}'s row says nothing about what it does`);
      const expected = declared[name];
      if (defaultCell?.startsWith('—')) {
        if (expected !== undefined) problems.push(`${README}: ${name}'s default is "—" but api-backend/src/config.ts declares "${expected}"`);
      } else if (expected !== undefined && defaults[i] !== expected) {
        problems.push(`${README}: ${name}'s default is "${defaults[i] ?? defaultCell}" but api-backend/src/config.ts declares "${expected}"`);
      }
    });
  }
  for (const name of Object.keys(declared)) {
    if (!seen.has(name)) problems.push(`${README}: ${name} is missing from the settings table under "## Configuration": add | \`${name}\` | \`${declared[name] ?? '—'}\` | what it does |`);
  }
  return problems;
}

/** compose's (or the stack file's) api-backend environment: every setting passed (or pinned), `${NAME:-default}` as declared. */
export function checkCompose(declared: Declared, text: string, file = COMPOSE): string[] {
  const environment = composeEnvironment(text);
  if (environment === undefined) return [`${file}: no environment list under services.api-backend`];
  const problems: string[] = [];
  for (const [name, raw] of environment) {
    if (!(name in declared)) {
      problems.push(`${file}: api-backend's environment sets ${name}, which is not a setting of api-backend/src/config.ts`);
      continue;
    }
    const passed = /^\$\{([A-Z0-9_]+):-(.*)\}$/.exec(raw);
    if (!passed) continue; // pinned inside the container
    if (passed[1] !== name) problems.push(`${file}: ${name} is read from \${${passed[1]}}: use the same name in .env`);
    if (passed[2] !== '' || declared[name] === undefined) problems.push(...defaultProblem(declared, name, passed[2], file));
    else problems.push(`${file}: ${name} falls back to "" but api-backend/src/config.ts declares "${declared[name]}": write \${${name}:-${declared[name]}}`);
  }
  for (const name of Object.keys(declared)) {
    if (!environment.has(name) && !(name in NOT_IN_COMPOSE)) {
      problems.push(`${file}: api-backend's environment drops ${name}: add ${name}: "\${${name}:-${declared[name] ?? ''}}"`);
    }
  }
  return problems;
}

/** The `KEY: value` lines of services.api-backend.environment (values unquoted). */
function composeEnvironment(text: string): Map<string, string> | undefined {
  const lines = text.split('\n');
  const service = lines.findIndex((line) => /^ {2}api-backend:\s*$/.test(line));
  if (service < 0) return undefined;
  const start = lines.findIndex((line, i) => i > service && /^ {4}environment:\s*$/.test(line));
  if (start < 0) return undefined;
  const environment = new Map<string, string>();
  for (const line of lines.slice(start + 1)) {
    if (/^\s*(#.*)?$/.test(line)) continue;
    const entry = /^ {6}([A-Z][A-Z0-9_]*):\s*(.*)$/.exec(line);
    if (!entry) break;
    environment.set(entry[1], entry[2].replace(/^"(.*)"$/, '$1'));
  }
  return environment;
}

export function readDocs(root: string): SettingsDocs {
  const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
  return { envTemplate: read(ENV_TEMPLATE), readme: read(README), compose: read(COMPOSE), stack: read(STACK) };
}

if (require.main === module) {
  const problems = checkSettings(declaredSettings(), readDocs(process.cwd()));
  for (const problem of problems) console.error(problem);
  console.log(problems.length === 0 ? 'settings: env.template, README, compose and the stack file agree with api-backend/src/config.ts' : `settings: ${problems.length} problem(s)`);
  process.exit(problems.length === 0 ? 0 : 1);
}
