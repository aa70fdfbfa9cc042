/**
 * Where a bridge setting comes from: the same setting given by bridge.json, a CTLL_* variable and
 * a flag resolves flags > environment > file; a config file with a key the bridge does not know is
 * refused, naming the key.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OptionError } from '../src/errors';
import { mergeSettings, readConfigFile, SETTINGS } from '../src/settings-sources';

let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-settings-'));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function configFile(contents: unknown): string {
  const file = path.join(dir, `bridge-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, typeof contents === 'string' ? contents : JSON.stringify(contents));
  return file;
}

describe('bridge settings from flags, environment and bridge.json', () => {
  it('takes the flag over the variable over the file, setting by setting', () => {
    const file = readConfigFile(configFile({ server: 'https://file.example.com', target: 'http://127.0.0.1:1', transport: 'poll', pingTimeoutMs: 9000 }), true);
    const env = { CTLL_SERVER: 'https://env.example.com', CTLL_TARGET: 'http://127.0.0.1:2' };
    const flags = { server: 'https://flag.example.com' };
    expect(mergeSettings({ flags, env, file })).toMatchObject({
      server: 'https://flag.example.com', // flag over variable and file
      target: ['http://127.0.0.1:2'], // variable over file (a list: --target may repeat)
      transport: 'poll', // only in the file
      'ping-timeout-ms': '9000', // a JSON number checked later like the flag's text
    });
    expect(mergeSettings({ flags: {}, env: {}, file }).server).toBe('https://file.example.com');
  });

  it('reads yes/no variables for switches, and a variable saying no overrides the file', () => {
    const file = readConfigFile(configFile({ noFallback: true, quiet: true }), true);
    const merged = mergeSettings({ flags: {}, env: { CTLL_NO_FALLBACK: 'false', CTLL_JSON_LOGS: '1' }, file });
    expect(merged).toMatchObject({ 'no-fallback': false, quiet: true, 'json-logs': true });
    expect(mergeSettings({ flags: { 'no-fallback': true }, env: { CTLL_NO_FALLBACK: '0' }, file })['no-fallback']).toBe(true);
    expect(() => mergeSettings({ flags: {}, env: { CTLL_QUIET: 'maybe' } })).toThrow(/^CTLL_QUIET: "maybe" is neither true/);
  });

  it('takes the credential from the strongest source that names one, a file path relative to bridge.json', () => {
    const file = readConfigFile(configFile({ tokenFile: 'secrets/token' }), true);
    expect(mergeSettings({ flags: {}, env: {}, file })).toMatchObject({ 'token-file': path.join(dir, 'secrets/token'), token: undefined });
    // CTLL_TOKEN outranks the file's tokenFile, and a --token-file flag outranks CTLL_TOKEN.
    expect(mergeSettings({ flags: {}, env: { CTLL_TOKEN: 'from-env' }, file })).toMatchObject({ token: 'from-env', 'token-file': undefined });
    expect(mergeSettings({ flags: { 'token-file': '/run/key' }, env: { CTLL_TOKEN: 'from-env' }, file })).toMatchObject({
      token: undefined,
      'token-file': '/run/key',
    });
  });

  it('refuses a file with an unknown key, naming it, and a token written in clear', () => {
    expect(() => readConfigFile(configFile({ server: 'https://relay.example.com', targte: 'http://127.0.0.1:1' }), true)).toThrow(/unknown key "targte"/);
    expect(() => readConfigFile(configFile({ token: 'eyJ...' }), true)).toThrow(/unknown key "token" \(write the token in a file of its own and name it with "tokenFile"\)/);
    expect(() => readConfigFile(configFile({ pingTimeoutMs: '10s' }), true)).toThrow(/"pingTimeoutMs": /);
    expect(() => readConfigFile(configFile('{"server": '), true)).toThrow(/is not valid JSON/);
    expect(() => readConfigFile(configFile([]), true)).toThrow(OptionError);
  });

  it('needs a file named by --config but not the default one', () => {
    expect(readConfigFile(path.join(dir, 'absent.json'), false)).toBeUndefined();
    expect(() => readConfigFile(path.join(dir, 'absent.json'), true)).toThrow(/^--config: cannot read .*absent\.json \(ENOENT\)/);
  });

  it('has a distinct CTLL_ variable for every setting and a file key for all but the token', () => {
    expect(new Set(SETTINGS.map((setting) => setting.env)).size).toBe(SETTINGS.length);
    for (const setting of SETTINGS) expect(setting.env).toBe(`CTLL_${setting.flag.toUpperCase().replace(/-/g, '_')}`);
    expect(SETTINGS.filter((setting) => setting.key === undefined).map((setting) => setting.flag)).toEqual(['token']);
  });
});
