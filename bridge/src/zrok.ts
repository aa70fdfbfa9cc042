/**
 * `--zrok-url`: the desktop also offers a zrok share of its LLM server. The bridge
 * registers the share with the relay, heartbeats it so the registration stays alive, and
 * unregisters it on exit. It runs beside the tunnel, not inside it: the relay forwards to the
 * share only while no tunnel is connected, so a desktop whose network blocks both tunnel
 * transports still serves chats through its share.
 *
 * The relay answers each registration and heartbeat with the interval it wants beats at. A
 * heartbeat answered 404 means the relay forgot the share (it expired, or the relay restarted):
 * the bridge registers it again. A 400 means the relay will never accept this URL: the bridge
 * says why once and stops trying. Anything else is retried after `retryMs`.
 */
import http from 'node:http';
import https from 'node:https';
import { FixedTokenSource, type TokenSource } from './auth/token-source';
import { OptionError } from './errors';
import { DEFAULT_OPTIONS, relayUrlFor, tunnelUrlFor, type BridgeOptions } from './options';
import { chooseProxy } from './proxy';
import { proxyAgentFor } from './proxy-agent';
import { userAgent } from './version';

export interface ZrokShareOptions extends Pick<BridgeOptions, 'server' | 'token' | 'tokenSource' | 'target' | 'proxy' | 'proxyEnv' | 'onNotice'> {
  /** The share's public URL, as `zrok share public` printed it. */
  publicUrl: string;
  /** Wait after a failed call before the next attempt. */
  retryMs?: number;
  /** Longest wait for the relay to answer one call. */
  requestTimeoutMs?: number;
}

export const DEFAULT_ZROK_OPTIONS = Object.freeze({
  retryMs: 5_000,
  // Registration waits for the relay's first health check of the share, which may take seconds.
  requestTimeoutMs: 20_000,
  // Used only if the relay's answer does not say.
  heartbeatIntervalMs: 30_000,
});

interface Answer {
  status: number;
  body: { tunnelId?: string; heartbeatIntervalMs?: number; reachable?: boolean | null; error?: { code?: string; message?: string } };
}

export class ZrokShare {
  private readonly relayUrl: URL;
  private readonly publicUrl: string;
  private readonly localUrl: string;
  private readonly agent: http.Agent;
  private readonly options: { tokens: TokenSource; retryMs: number; requestTimeoutMs: number; heartbeatIntervalMs: number; onNotice?: (message: string) => void };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private inFlight: http.ClientRequest | undefined;
  private stopped = false;
  private lastNotice: string | undefined;
  private id: string | undefined;

  /** Checks the options (an OptionError names the flag); nothing is sent before `start()`. */
  constructor(options: ZrokShareOptions) {
    this.options = { ...DEFAULT_ZROK_OPTIONS, ...withoutUndefined(options), tokens: options.tokenSource ?? new FixedTokenSource(options.token ?? '') };
    this.relayUrl = relayUrlFor(tunnelUrlFor(options.server));
    this.publicUrl = checkPublicUrl(options.publicUrl);
    this.localUrl = options.target ?? DEFAULT_OPTIONS.target;
    const proxyUrl = chooseProxy(this.relayUrl, options.proxy, options.proxyEnv);
    this.agent = proxyUrl ? proxyAgentFor(proxyUrl) : this.relayUrl.protocol === 'https:' ? new https.Agent() : new http.Agent();
  }

  /** The relay's id for the share while it is registered. */
  get tunnelId(): string | undefined {
    return this.id;
  }

  start(): this {
    if (!this.running && !this.timer && !this.stopped) this.run();
    return this;
  }

  /** Stops heartbeating and unregisters the share (best effort: an unreachable relay lets it expire). */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    // Shutting down must not wait out a slow register call; the relay lets an orphan expire.
    this.inFlight?.destroy(new Error('bridge shutting down'));
    await this.running;
    if (this.id) {
      await this.call('DELETE', '/api/zrok/unregister', { tunnelId: this.id }, 3_000).catch(() => undefined);
      this.id = undefined;
    }
    this.agent.destroy();
  }

  private run(): void {
    this.timer = undefined;
    this.running = this.beat().then((nextMs) => {
      this.running = undefined;
      if (nextMs !== undefined && !this.stopped) this.timer = setTimeout(() => this.run(), nextMs);
    });
  }

  /** One registration or heartbeat; resolves when to beat next, or undefined to stop. */
  private async beat(): Promise<number | undefined> {
    const { retryMs } = this.options;
    try {
      if (!this.id) {
        const answer = await this.call('POST', '/api/zrok/register', { tunnelInfo: { publicUrl: this.publicUrl, localUrl: this.localUrl } });
        if ((answer.status === 200 || answer.status === 201) && answer.body.tunnelId) {
          this.id = answer.body.tunnelId;
          const reachable = answer.body.reachable === false ? ', but the relay cannot reach it yet' : '';
          this.notice(`zrok share registered with the relay${reachable}`);
          return this.intervalOf(answer);
        }
        this.notice(`the relay refused the zrok share: ${describe(answer)}`);
        return answer.status === 400 ? undefined : retryMs;
      }
      const answer = await this.call('POST', '/api/zrok/heartbeat', { tunnelId: this.id });
      if (answer.status === 200) return this.intervalOf(answer);
      if (answer.status === 404) {
        this.id = undefined;
        this.notice('the relay no longer knows the zrok share; registering it again');
        return 0;
      }
      this.notice(`zrok share heartbeat failed: ${describe(answer)}`);
      return retryMs;
    } catch (error) {
      this.notice(`cannot reach the relay for the zrok share: ${(error as Error).message}`);
      return retryMs;
    }
  }

  private intervalOf(answer: Answer): number {
    const given = answer.body.heartbeatIntervalMs;
    return typeof given === 'number' && given >= 100 ? given : this.options.heartbeatIntervalMs;
  }

  /** Says a thing once, not on every retry. */
  private notice(message: string): void {
    if (message === this.lastNotice) return;
    this.lastNotice = message;
    this.options.onNotice?.(message);
  }

  private async call(method: 'POST' | 'DELETE', path: string, body: unknown, timeoutMs = this.options.requestTimeoutMs): Promise<Answer> {
    const token = await this.options.tokens.get();
    const text = JSON.stringify(body);
    const url = new URL(`${this.relayUrl.pathname.replace(/\/+$/, '')}${path}`, this.relayUrl);
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'https:' ? https : http).request(url, {
        method,
        agent: this.agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          'user-agent': userAgent(),
        },
      });
      this.inFlight = req;
      req.on('close', () => {
        if (this.inFlight === req) this.inFlight = undefined;
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          let parsed: Answer['body'] = {};
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Answer['body'];
          } catch {
            // Not JSON (a proxy's error page, say): the status says enough.
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.end(text);
    });
  }
}

/** Creates the share's registration and starts it. Throws an OptionError for a bad `--zrok-url`. */
export function startZrokShare(options: ZrokShareOptions): ZrokShare {
  return new ZrokShare(options).start();
}

/** The relay judges the address; the bridge only catches what is plainly not a share URL. */
function checkPublicUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new OptionError('--zrok-url', `"${value}" is not a URL (expected e.g. https://abc123.share.zrok.io)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new OptionError('--zrok-url', `"${value}" must be an https: URL`);
  if (url.username || url.password) throw new OptionError('--zrok-url', 'credentials in the URL are not supported');
  return value;
}

function describe(answer: Answer): string {
  const { code, message } = answer.body.error ?? {};
  return [answer.status, code, message].filter((part) => part !== undefined && part !== '').join(' ');
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
