/**
 * Watches the local LLM server (the target): asks it at start and then every `intervalMs`
 * whether it is there, and says so whenever the answer changes.
 *
 * Ollama answers `GET /api/version` with `{version}`; an OpenAI-compatible server (LM Studio,
 * llama.cpp, vLLM) answers `GET /v1/models`. Whatever answers one of them is up. The probe uses
 * connections of its own, not the forwarding pool, so a pooled socket the server has since closed
 * never makes a running server look down.
 */
import http from 'node:http';
import https from 'node:https';
import type { TargetKind } from '@ctll/protocol';
import type { LocalTarget } from './local-targets';

export interface TargetState {
  up: boolean;
  /** What answered; while down, what answered last (`unknown` if nothing ever did). */
  kind: TargetKind;
  version?: string;
  /** Why the last probe failed, for people ("connection refused"). */
  error?: string;
}

export interface TargetProbeOptions {
  intervalMs: number;
  /** How long one request of a probe may take. */
  timeoutMs: number;
  /** Called after the first probe and whenever up, kind, version or error change. */
  onChange(state: TargetState): void;
}

interface Answer {
  status: number;
  body: string;
}

export class TargetProbe {
  private timer: NodeJS.Timeout | undefined;
  private last: TargetState | undefined;
  private running = false;
  private stopped = false;

  constructor(
    private readonly target: LocalTarget,
    private readonly options: TargetProbeOptions,
  ) {}

  /** The latest answer; undefined until the first probe ends. */
  get state(): TargetState | undefined {
    return this.last;
  }

  start(): void {
    if (this.timer || this.stopped) return;
    void this.check();
    this.timer = setInterval(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    // A server slower than the interval must not pile probes up.
    if (this.running) return;
    this.running = true;
    try {
      const state = await this.probe();
      if (this.stopped || sameState(state, this.last)) return;
      this.last = state;
      this.options.onChange(state);
    } finally {
      this.running = false;
    }
  }

  private async probe(): Promise<TargetState> {
    const lastKind = this.last?.kind ?? 'unknown';
    let ollama: Answer;
    try {
      ollama = await this.get('/api/version');
    } catch (error) {
      return { up: false, kind: lastKind, error: describeFailure(error as NodeJS.ErrnoException, this.options.timeoutMs) };
    }
    if (ollama.status === 200) {
      const version = readVersion(ollama.body);
      if (version !== null) return { up: true, kind: 'ollama', ...(version ? { version } : {}) };
    }
    try {
      // A target given with its /v1 base (http://127.0.0.1:1234/v1) already has the prefix.
      const models = await this.get(/\/v1\/?$/.test(this.target.url.pathname) ? '/models' : '/v1/models');
      if (models.status === 200) return { up: true, kind: 'openai' };
      return { up: false, kind: lastKind, error: `answered HTTP ${ollama.status} to /api/version and HTTP ${models.status} to /v1/models` };
    } catch (error) {
      return { up: false, kind: lastKind, error: describeFailure(error as NodeJS.ErrnoException, this.options.timeoutMs) };
    }
  }

  private get(path: string): Promise<Answer> {
    const url = new URL(this.target.url.href);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = client.get(url, { agent: false, headers: { accept: 'application/json' } }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          // An answer this small is all a probe needs; a huge one is not worth reading.
          if (size < 64 * 1024) chunks.push(chunk);
          size += chunk.byteLength;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(this.options.timeoutMs, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
    });
  }
}

/** Ollama's `{version}`: the version (or '' if it gives none); null when the body is not Ollama's. */
function readVersion(body: string): string | null {
  try {
    const parsed = JSON.parse(body) as { version?: unknown };
    if (typeof parsed !== 'object' || parsed === null) return null;
    return typeof parsed.version === 'string' ? parsed.version.slice(0, 64) : null;
  } catch {
    return null;
  }
}

const FAILURES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

function describeFailure(error: NodeJS.ErrnoException, timeoutMs: number): string {
  if (error.code === 'ETIMEDOUT') return `no answer within ${timeoutMs / 1000} s`;
  return (error.code && FAILURES[error.code]) ?? error.code ?? error.message;
}

function sameState(a: TargetState, b: TargetState | undefined): boolean {
  return b !== undefined && a.up === b.up && a.kind === b.kind && a.version === b.version && a.error === b.error;
}

/** How the status line names the target: "Ollama", or what answered last. */
export function targetName(kind: TargetKind, target: URL): string {
  if (kind === 'ollama') return 'Ollama';
  if (kind === 'openai') return 'OpenAI-compatible server';
  // Nothing answered yet: Ollama's own port says who is expected.
  return target.port === '11434' ? 'Ollama' : 'LLM server';
}
