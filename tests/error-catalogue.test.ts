/**
 * One error catalogue (protocol/src/error-catalogue.ts): a code means one HTTP status wherever it
 * is answered, and no program writes a status beside a code of its own.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as protocol from '@ctll/protocol';
import { CatalogueError, ERROR_CATALOGUE, ERROR_MESSAGES, errorBody, errorMessage, RelayError } from '@ctll/protocol';

const ROOT = path.join(__dirname, '..');
const SOURCES = ['api-backend/src', 'streaming-proxy/src', 'bridge/src', 'protocol/src'];

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

describe('the error catalogue', () => {
  it("gives every error class of the protocol the catalogue's status for its code", () => {
    const disagreeing: string[] = [];
    for (const [name, value] of Object.entries(protocol)) {
      if (typeof value !== 'function' || !(value.prototype instanceof RelayError) || value === CatalogueError) continue;
      const error = new (value as unknown as new (message: string) => RelayError)('m');
      const listed = (ERROR_CATALOGUE as Record<string, number>)[error.code];
      if (listed !== error.status) disagreeing.push(`${name}: ${error.code} ${error.status}, catalogue ${listed}`);
    }
    expect(disagreeing).toEqual([]);
  });

  it("answers a code by the catalogue's status, and a desktop's own code as a bad gateway", () => {
    expect(errorBody(new CatalogueError('too_many_streams', 'at most 1'))).toMatchObject({ status: 429, body: { error: { code: 'too_many_streams', message: 'at most 1' } } });
    expect(errorBody(new CatalogueError('desktop_disconnected', 'gone')).status).toBe(503);
    expect(errorBody(new CatalogueError('gpu_on_fire', 'the desktop says so')).status).toBe(502);
  });

  it('is the only place a status stands beside a code: no sender writes the pair itself', () => {
    const literalPair = /\(\s*[\w.]+,\s*\d{3},\s*'[a-z_]+'|FAILURE_STATUS|\bstatus:\s*\d{3},\s*code:/;
    const offenders = SOURCES.flatMap((dir) => sourceFiles(path.join(ROOT, dir)))
      .filter((file) => !file.endsWith('error-catalogue.ts'))
      .flatMap((file) =>
        fs
          .readFileSync(file, 'utf8')
          .split('\n')
          .map((line, i) => ({ line, where: `${path.relative(ROOT, file)}:${i + 1}` }))
          .filter(({ line }) => literalPair.test(line))
          .map(({ where, line }) => `${where}: ${line.trim()}`),
      );
    expect(offenders).toEqual([]);
  });

  it('words an answer sent from two places once: the template, with its placeholders filled', () => {
    expect(errorMessage('too_many_streams', { max: 4 })).toBe('at most 4 requests at once per tunnel');
    expect(errorMessage('desktop_offline')).toBe('your desktop bridge is not connected');
    // Every template's code is in the catalogue, so it has its one status.
    for (const code of Object.keys(ERROR_MESSAGES)) expect(ERROR_CATALOGUE).toHaveProperty(code);
  });

  it('keeps no copy of a template wording in the sources: they call errorMessage', () => {
    // The longest fixed piece of each template: what a copy of it would have to contain.
    const wordings = Object.values(ERROR_MESSAGES).map((template) => template.split(/\{\w+\}/).reduce((a, b) => (b.length > a.length ? b : a)));
    const copies = SOURCES.flatMap((dir) => sourceFiles(path.join(ROOT, dir)))
      .filter((file) => !file.endsWith('error-catalogue.ts'))
      .flatMap((file) => {
        const text = fs.readFileSync(file, 'utf8');
        return wordings.filter((wording) => text.includes(wording)).map((wording) => `${path.relative(ROOT, file)}: ${wording}`);
      });
    expect(copies).toEqual([]);
  });
});
