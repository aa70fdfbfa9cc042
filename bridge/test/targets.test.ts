/**
 * Several local servers behind one bridge (`--target name=url`): which one a path picks, how the
 * repeated flag is read and checked, where the list comes from (flag > CTLL_TARGET > bridge.json,
 * whole), and how the status line shows each target.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatStatus, resolveOptions, StatusPrinter, type BridgeStatus } from '../src';
import { LocalTargets } from '../src/local-targets';
import { splitTargets } from '../src/options';
import { mergeSettings, readConfigFile } from '../src/settings-sources';

describe('choosing a target by path', () => {
  const targets = new LocalTargets(new URL('http://127.0.0.1:11434'), new Map([['lms', new URL('http://127.0.0.1:1234/v1')]]));
  afterAll(() => targets.destroy());

  it('sends /t/<name>/... to the named target without the prefix, and every other path to the default', () => {
    expect(targets.route('/t/lms/models?x=1')).toMatchObject({ target: { name: 'lms' }, path: '/models?x=1' });
    expect(targets.route('/t/lms')).toMatchObject({ target: { name: 'lms' }, path: '/' });
    expect(targets.route('/t/lms?x=1')).toMatchObject({ target: { name: 'lms' }, path: '/?x=1' });
    expect(targets.route('/api/tags')).toMatchObject({ target: { name: undefined }, path: '/api/tags' });
    // Only the whole segment `t` is the prefix.
    expect(targets.route('/tags/t/lms')).toMatchObject({ target: { name: undefined }, path: '/tags/t/lms' });
    expect(targets.route('/t')).toMatchObject({ target: { name: undefined }, path: '/t' });
  });

  it('names the target a path asks for when the bridge has none by that name', () => {
    expect(targets.route('/t/ollama/api/tags')).toEqual({ target: undefined, unknownName: 'ollama' });
    expect(targets.route('/t//api/tags')).toEqual({ target: undefined, unknownName: '' });
    expect(targets.route('/t/LMS/v1/models')).toEqual({ target: undefined, unknownName: 'LMS' });
  });
});

describe('--target, repeated', () => {
  it('reads a URL as the default target and name=url as a named one', () => {
    expect(splitTargets(['lms=http://127.0.0.1:1234/v1', 'http://127.0.0.1:11434', 'llama_cpp=http://127.0.0.1:8080'])).toEqual({
      target: 'http://127.0.0.1:11434',
      targets: { lms: 'http://127.0.0.1:1234/v1', llama_cpp: 'http://127.0.0.1:8080' },
    });
    // A query string's `=` is part of a URL, not a name.
    expect(splitTargets(['http://127.0.0.1:8080/?a=b'])).toEqual({ target: 'http://127.0.0.1:8080/?a=b', targets: {} });
    expect(splitTargets([])).toEqual({ target: undefined, targets: {} });
  });

  it('refuses two unnamed targets, a name given twice, a bad name and a bad URL, naming the flag', () => {
    expect(() => splitTargets(['http://127.0.0.1:1', 'http://127.0.0.1:2'])).toThrow(/^--target: two unnamed targets/);
    expect(() => splitTargets(['a=http://127.0.0.1:1', 'a=http://127.0.0.1:2'])).toThrow('--target: the name "a" is given twice');
    const base = { server: 'https://relay.example.com', token: 'abc' };
    expect(() => resolveOptions({ ...base, targets: { 'lm studio': 'http://127.0.0.1:1234' } })).toThrow(/^--target: "lm studio" is not a target name/);
    expect(() => resolveOptions({ ...base, targets: { lms: 'localhost:1234' } })).toThrow(/^--target lms: "localhost:1234" must be an http: or https: URL/);
    expect(() => resolveOptions({ ...base, targets: { lms: 'nonsense' } })).toThrow('--target lms: "nonsense" is not a URL');
  });

  it('keeps the default target at Ollama\'s address when only named targets are given', () => {
    const resolved = resolveOptions({ server: 'https://relay.example.com', token: 'abc', targets: { lms: 'http://127.0.0.1:1234' } });
    expect(resolved.targetUrl.href).toBe('http://127.0.0.1:11434/');
    expect([...resolved.namedTargets].map(([name, url]) => [name, url.href])).toEqual([['lms', 'http://127.0.0.1:1234/']]);
  });
});

describe('where the targets come from', () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-targets-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const fileWith = (target: unknown) => {
    const file = path.join(dir, `bridge-${Math.random().toString(36).slice(2)}.json`);
    fs.writeFileSync(file, JSON.stringify({ target }));
    return readConfigFile(file, true);
  };

  it('takes the whole list from the flags over CTLL_TARGET over bridge.json, never mixing them', () => {
    const file = fileWith(['http://127.0.0.1:1', 'lms=http://127.0.0.1:2']);
    const env = { CTLL_TARGET: 'http://127.0.0.1:3, vllm=http://127.0.0.1:4' };
    const flags = { target: ['jan=http://127.0.0.1:5'] };
    expect(mergeSettings({ flags: {}, env: {}, file }).target).toEqual(['http://127.0.0.1:1', 'lms=http://127.0.0.1:2']);
    expect(mergeSettings({ flags: {}, env, file }).target).toEqual(['http://127.0.0.1:3', 'vllm=http://127.0.0.1:4']);
    expect(mergeSettings({ flags, env, file }).target).toEqual(['jan=http://127.0.0.1:5']);
    // An empty variable unsets it for one command: the file's list applies.
    expect(mergeSettings({ flags: {}, env: { CTLL_TARGET: '' }, file }).target).toEqual(['http://127.0.0.1:1', 'lms=http://127.0.0.1:2']);
  });

  it('reads a single string in bridge.json as a list of one, and refuses other shapes', () => {
    expect(mergeSettings({ flags: {}, env: {}, file: fileWith('http://127.0.0.1:1') }).target).toEqual(['http://127.0.0.1:1']);
    expect(() => fileWith({ lms: 'http://127.0.0.1:2' })).toThrow(/"target"/);
    expect(() => fileWith([])).toThrow(/"target"/);
  });
});

describe('the status line with named targets', () => {
  const base: BridgeStatus = {
    state: 'connected',
    server: 'https://relay.example.com',
    user: 'alice',
    target: 'http://127.0.0.1:11434',
    transport: 'ws',
    served: 2,
    active: 0,
    targetHealth: { up: true, kind: 'ollama', version: '0.5.1', name: 'Ollama' },
  };
  const lmsDown: BridgeStatus['targets'] = [
    { name: 'lms', target: 'http://127.0.0.1:1234', health: { up: false, kind: 'unknown', error: 'connection refused', name: 'LLM server' } },
  ];

  it('shows each target and whether it answers', () => {
    expect(formatStatus({ ...base, targets: [{ name: 'lms', target: 'http://127.0.0.1:1234', health: { up: true, kind: 'openai', name: 'OpenAI-compatible server' } }] })).toBe(
      'connected to https://relay.example.com as alice via WebSocket · target http://127.0.0.1:11434 (Ollama 0.5.1) · ' +
        'lms: http://127.0.0.1:1234 (OpenAI-compatible server) · 2 requests served',
    );
    expect(formatStatus({ ...base, targets: lmsDown })).toBe(
      'connected to https://relay.example.com as alice via WebSocket · target http://127.0.0.1:11434 (Ollama 0.5.1) · ' +
        'lms: LLM server not reachable at http://127.0.0.1:1234 (connection refused) · 2 requests served',
    );
    expect(formatStatus({ ...base, targets: [{ name: 'lms', target: 'http://127.0.0.1:1234' }] })).toContain('· lms: http://127.0.0.1:1234 ·');
  });

  it('prints a new log line when only a named target goes down', () => {
    const written: string[] = [];
    const printer = new StatusPrinter('text', { write: (text: string) => written.push(text) });
    const lmsUp: BridgeStatus['targets'] = [{ name: 'lms', target: 'http://127.0.0.1:1234', health: { up: true, kind: 'openai', name: 'OpenAI-compatible server' } }];
    printer.status({ ...base, targets: lmsUp });
    printer.status({ ...base, targets: lmsUp, served: 3 });
    printer.status({ ...base, targets: lmsDown });
    expect(written).toHaveLength(2);
    expect(written[1]).toContain('lms: LLM server not reachable');
  });
});
