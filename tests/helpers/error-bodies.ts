/**
 * Every error body the test suite receives, kept so one test can read them all at the end and
 * check that none carries the relay's internals. Recording happens in each test file's setup
 * (`recordErrorBodies`, wired by jest.config.js), on the client side, so it sees exactly what a
 * caller sees; the record is one NDJSON file per jest run, named in CTLL_ERROR_BODIES by the
 * global setup. Only `fetch` is recorded: most suites use it, and the dedicated test adds the
 * error paths the others reach through raw sockets.
 */
import fs from 'node:fs';

export interface RecordedBody {
  method: string;
  url: string;
  status: number;
  body: string;
}

export function errorBodiesFile(): string | undefined {
  return process.env.CTLL_ERROR_BODIES || undefined;
}

export function recordErrorBodies(): void {
  const file = errorBodiesFile();
  const original = globalThis.fetch;
  if (!file || (original as { recording?: boolean }).recording) return;
  const recording = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const res = await original(input, init);
    if (res.status >= 400) {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
      // A copy of the body, read on the side: the test still reads (or drops) its own.
      res
        .clone()
        .text()
        .then((body) => fs.appendFileSync(file, `${JSON.stringify({ method, url, status: res.status, body: body.slice(0, 4096) })}\n`))
        .catch(() => undefined);
    }
    return res;
  };
  globalThis.fetch = Object.assign(recording, { recording: true }) as typeof fetch;
}

export function readErrorBodies(): RecordedBody[] {
  const file = errorBodiesFile();
  if (!file || !fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as RecordedBody);
}
