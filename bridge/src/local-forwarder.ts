/**
 * One relayed request, played against the local LLM server.
 *
 * The forwarder owns the local HTTP request of one stream. The request body arrives in pieces
 * (`writeBody`) and each piece is reported as taken (`onTaken`) only once the local request has
 * accepted it, which is when the tunnel may grant the relay more credit. The answer goes out
 * through a ResponseSink as it arrives, chunk by chunk; when the sink runs out of credit the local
 * response is paused until it says it is ready again, so a slow web client slows the model's
 * reading here instead of filling memory. The forwarder knows nothing about the transport: the
 * WebSocket tunnel (and later the polling one) provides the sink. Which local server the request
 * is for comes from its path (local-targets.ts): an unknown `/t/<name>/` is answered `unknown_target`.
 */
import http from 'node:http';
import https from 'node:https';
import { bodyFraming, DrainCredit, endToEndHeaders, escapesRoot, TunnelErrorCode, type Headers } from '@ctll/protocol';
import type { LocalTarget, LocalTargets } from './local-targets';

/** The head of a request as the relay sent it. */
export interface RequestHead {
  method: string;
  path: string;
  headers: Headers;
  /** true when no body follows. */
  end: boolean;
}

/** Where the answer goes. A transport implements it for one stream. */
export interface ResponseSink {
  head(status: number, headers: Headers, end: boolean): void;
  /** Sends one body chunk at once; false means: send no more until `whenReady` calls back. */
  data(chunk: Buffer): boolean;
  whenReady(resume: () => void): void;
  end(): void;
  fail(code: string, message: string): void;
}

/** How a stream ended, for the counters. */
export type Outcome = 'served' | 'failed' | 'aborted';

/**
 * Headers the bridge does not pass on besides the hop-by-hop ones: the relay has already answered
 * any `expect: 100-continue` itself and the body is on its way.
 */
const NOT_FORWARDED = ['expect'];

export class LocalForwarder {
  private readonly request: http.ClientRequest | undefined;
  private response: http.IncomingMessage | undefined;
  private done = false;
  /** Bytes written to the local request count as taken once it took them. */
  private readonly toLocal = new DrainCredit((bytes) => {
    if (!this.done) this.onTaken(bytes);
  });
  /** The target the request's path chose (local-targets.ts); undefined when it named none. */
  private readonly target: LocalTarget | undefined;

  constructor(
    head: RequestHead,
    targets: LocalTargets,
    private readonly sink: ResponseSink,
    private readonly onTaken: (bytes: number) => void,
    private readonly onDone: (outcome: Outcome) => void,
  ) {
    const isHead = head.method === 'HEAD';
    const route = targets.route(head.path);
    this.target = route.target;
    if (!route.target) {
      this.request = undefined;
      this.fail(TunnelErrorCode.UnknownTarget, describeUnknownTarget(route.unknownName, targets.names));
      return;
    }
    const { target, path } = route;
    if (escapesRoot(path)) {
      // The relay refuses these already; the desktop does not rely on it to stay inside --target.
      this.request = undefined;
      this.fail(TunnelErrorCode.BadPath, `the path climbs above ${target.label}`);
      return;
    }
    try {
      this.request = (target.url.protocol === 'https:' ? https : http).request({
        protocol: target.url.protocol,
        hostname: target.url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: target.url.port || undefined,
        method: head.method,
        path: joinPath(target.url.pathname, path),
        // Framed as the caller sent it, for every method: Node frames a GET or DELETE body only when told.
        headers: { ...endToEndHeaders(head.headers, NOT_FORWARDED), ...bodyFraming(head.headers, !head.end), host: target.url.host },
        agent: target.agent,
      });
    } catch (error) {
      // http.request refuses some heads synchronously (a bad header value, a space in the path).
      this.request = undefined;
      this.fail(TunnelErrorCode.BadMessage, `the local request could not be made: ${(error as Error).message}`);
      return;
    }
    const request = this.request;
    request.on('socket', (socket) => socket.setNoDelay(true));
    request.on('response', (res) => this.onResponse(res, isHead));
    // Node's client passes over other 1xx heads (103 Early Hints) and waits for the final answer;
    // after a 101 the connection speaks another protocol, which a relayed answer cannot carry.
    request.on('upgrade', (_res, socket) => {
      socket.destroy();
      this.switchingRefused();
    });
    request.on('error', (error) => this.onRequestError(error));
    if (head.end) request.end();
  }

  /** True once the stream has ended, however it ended (possibly already inside the constructor). */
  get finished(): boolean {
    return this.done;
  }

  /** One piece of the request body; counted as taken once the local request accepted it. */
  writeBody(chunk: Buffer): void {
    if (this.done || !this.request) return;
    this.toLocal.write(this.request, chunk);
  }

  endBody(): void {
    if (this.done || !this.request) return;
    this.request.end();
  }

  /** Stops at once: the local server sees its connection close, so the model stops generating. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.request?.destroy();
    this.onDone('aborted');
  }

  private onResponse(res: http.IncomingMessage, isHead: boolean): void {
    if (this.done) {
      res.destroy();
      return;
    }
    if ((res.statusCode ?? 0) < 200) {
      // A 101 without `upgrade` in its head arrives here rather than as 'upgrade'.
      res.destroy();
      this.switchingRefused();
      return;
    }
    this.response = res;
    const status = res.statusCode ?? 502;
    const noBody = isHead || status === 204 || status === 304 || res.headers['content-length'] === '0';
    try {
      this.sink.head(status, endToEndHeaders(res.headers), noBody);
    } catch (error) {
      this.fail(TunnelErrorCode.TargetFailed, `the answer of ${this.label} cannot be relayed: ${(error as Error).message}`);
      return;
    }
    if (noBody) {
      res.resume();
      this.finish();
      return;
    }
    // Each chunk goes out the moment it arrives: a token must never wait for the next one.
    res.on('data', (chunk: Buffer) => this.onChunk(res, chunk));
    res.on('end', () => {
      if (this.done) return;
      this.sink.end();
      this.finish();
    });
    res.on('error', (error) => this.onResponseFailed((error as NodeJS.ErrnoException).code ?? error.message));
    res.on('close', () => {
      if (!res.complete) this.onResponseFailed('connection closed');
    });
  }

  private onChunk(res: http.IncomingMessage, chunk: Buffer): void {
    if (this.done) return;
    if (this.sink.data(chunk)) return;
    res.pause();
    this.sink.whenReady(() => {
      if (!this.done) res.resume();
    });
  }

  private onRequestError(error: NodeJS.ErrnoException): void {
    if (this.done) return;
    const reason = error.code ?? error.message;
    if (this.response) this.onResponseFailed(reason);
    else this.fail(TunnelErrorCode.TargetUnreachable, `could not reach ${this.label}: ${reason}`);
  }

  private switchingRefused(): void {
    if (this.done) return;
    this.fail(TunnelErrorCode.TargetFailed, `${this.label} answered 101 Switching Protocols; only HTTP answers can be relayed`);
  }

  private onResponseFailed(reason: string): void {
    if (this.done) return;
    this.fail(TunnelErrorCode.TargetFailed, `${this.label} failed mid-answer: ${reason}`);
  }

  /** Only called once a target was chosen. */
  private get label(): string {
    return this.target?.label ?? 'the local server';
  }

  private finish(): void {
    this.done = true;
    // The server answered before taking the whole body (an early 413, say): the socket cannot be reused.
    if (this.request && !this.request.writableEnded) this.request.destroy();
    this.onDone('served');
  }

  private fail(code: string, message: string): void {
    this.done = true;
    this.request?.destroy();
    this.response?.destroy();
    this.sink.fail(code, message);
    this.onDone('failed');
  }
}

/** The target's base path joined with the relayed path: `/v1` + `/chat?x=1` is `/v1/chat?x=1`. */
export function joinPath(basePath: string, path: string): string {
  const base = basePath.replace(/\/+$/, '');
  return `${base}${path}`;
}

/** What a caller reads when the `/t/<name>/` prefix names no target of this bridge. */
function describeUnknownTarget(name: string, names: string[]): string {
  const known = names.length > 0 ? `its named targets: ${names.join(', ')}` : 'it has none; add one with --target <name>=<url>';
  return `the desktop bridge has no target named "${name.slice(0, 64)}" (${known})`;
}
