/**
 * One web client's request (or a polling bridge's call, which the proxy answers itself) carried to
 * the user's proxy over its frame link:
 * HTTP is parsed here, at the edge, and only here. The caller's headers are filtered once, the
 * desktop's path was computed once by the route, and from here to the bridge the request is the
 * tunnel's frames; the answer's frames are written into the caller's response as they come.
 *
 * Credit runs end to end: the caller's body is read only while the link stream has credit (the
 * proxy grants it back once the desktop's credit let the bytes on), and answer credit goes back
 * only once the caller's response took the bytes. If the caller goes away the proxy is told to
 * cancel, and so the desktop; if the link goes away mid-answer the caller gets a broken stream.
 *
 * A short body of known length (at most MAX_INLINE_BODY_BYTES) is read whole first and goes with
 * its head as one whole frame, when the proxy takes them; a whole answer is written with one write.
 * Such a body is outside the stream's credit (protocol/src/whole-frame.ts says why that is sound).
 */
import { validateHeaderName, validateHeaderValue, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  BodySender,
  CALLER_ONLY_HEADERS,
  CatalogueError,
  DrainCredit,
  endToEndHeaders,
  fitsInline,
  PayloadTooLargeError,
  ReceiveCredit,
  ServiceUnavailableError,
  type HttpRequestMessage,
  type HttpResponseMessage,
  type RelayError,
} from '@ctll/protocol';
import { sendError } from '../http/error-handler';
import type { LinkStreamHandler, ProxyLink } from './proxy-link';

export interface FrameRelayOptions {
  maxBodyBytes: number;
  /** Safety net for a proxy that stops answering altogether; the proxy enforces REQUEST_TIMEOUT_MS itself. */
  silenceTimeoutMs: number;
  onBytes: (direction: 'up' | 'down', bytes: number) => void;
  /** The link to the proxy broke under this request. */
  onUnreachable?: () => void;
  /** Our own headers for the proxy (a bridge call's marker and credential), added after the caller's are filtered. */
  internalHeaders?: Record<string, string>;
}

export function relayFrames(req: IncomingMessage, res: ServerResponse, link: ProxyLink, path: string, options: FrameRelayOptions): void {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > options.maxBodyBytes) {
    req.resume();
    sendError(res, new PayloadTooLargeError(`the request body exceeds ${options.maxBodyBytes} bytes`));
    return;
  }
  new FrameExchange(req, res, link, options).start(path);
}

class FrameExchange implements LinkStreamHandler {
  private readonly id: string;
  private readonly body: BodySender;
  private readonly credit: ReceiveCredit;
  private readonly timer: NodeJS.Timeout;
  private started = false;
  private bodyWritten = false;
  /** Whether the proxy knows this stream yet (a whole request is sent only once its body is read). */
  private headSent = false;
  private done = false;
  private readonly toCaller = new DrainCredit((bytes) => {
    if (!this.done) this.credit.consumed(bytes);
  });
  private received = 0;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly link: ProxyLink,
    private readonly options: FrameRelayOptions,
  ) {
    this.id = link.open(this);
    this.body = new BodySender((slice) => this.link.sendData(this.id, slice));
    this.credit = new ReceiveCredit((bytes) => this.link.sendControl({ type: 'window', id: this.id, bytes }));
    this.timer = setTimeout(() => this.silent(), options.silenceTimeoutMs);
  }

  start(path: string): void {
    const chunked = this.req.headers['transfer-encoding'] !== undefined;
    const hasBody = chunked || (this.req.headers['content-length'] ?? '0') !== '0';
    this.res.on('close', () => {
      if (!this.done) this.cancel('client disconnected');
    });
    const head = {
      type: 'http_request' as const,
      id: this.id,
      method: this.req.method ?? 'GET',
      path,
      headers: { ...endToEndHeaders(this.req.headers, CALLER_ONLY_HEADERS), ...this.options.internalHeaders },
    };
    if (hasBody && !chunked && this.link.acceptsWhole && fitsInline(Number(this.req.headers['content-length']))) return this.collect(head);
    this.headSent = true;
    this.link.sendControl({ ...head, end: !hasBody });
    if (hasBody) this.upload();
    else this.req.resume();
  }

  onResponse(message: HttpResponseMessage): void {
    if (this.done || this.started) return;
    if (!this.writeHead(message)) return;
    // The head goes out now (a client sees the status while the model thinks), unless the first
    // chunk arrived in the same read and can share its write.
    process.nextTick(() => {
      if (!this.bodyWritten && !this.res.writableEnded && !this.res.destroyed) this.res.flushHeaders();
    });
    if (message.end) this.finish();
  }

  onWhole(message: HttpResponseMessage, body: Buffer): void {
    if (this.done || this.started) return;
    if (!this.writeHead(message)) return;
    this.bodyWritten = true;
    this.options.onBytes('down', body.byteLength);
    // Head and body leave in one write; the stream is over, so its (unspent) credit needs no grant.
    this.finish(body);
  }

  /** Writes the answer's head to the caller; false (and the caller has its 502) when it is no answer. */
  private writeHead(message: HttpResponseMessage): boolean {
    this.timer.refresh();
    if (message.status < 200) {
      this.refuse('bad_response', `the desktop answered ${message.status}, which is not a final answer`);
      return false;
    }
    try {
      // Checked before writeHead, which would leave a half-written head behind if it threw.
      for (const [name, value] of Object.entries(message.headers)) {
        validateHeaderName(name);
        for (const one of Array.isArray(value) ? value : [value]) validateHeaderValue(name, one);
      }
      this.res.writeHead(message.status, message.headers);
    } catch (error) {
      this.refuse('bad_response', `the desktop sent an invalid response head: ${(error as Error).message}`);
      return false;
    }
    this.started = true;
    return true;
  }

  onData(payload: Buffer): void {
    if (this.done) return;
    this.credit.received(payload.byteLength);
    if (!this.started) return this.refuse('bad_response', 'the proxy sent body data before the response head');
    this.timer.refresh();
    this.bodyWritten = true;
    this.options.onBytes('down', payload.byteLength);
    // Answer credit goes back only once the caller took the bytes: the backpressure.
    this.toCaller.write(this.res, payload);
  }

  onEnd(): void {
    if (this.done) return;
    if (!this.started) return this.refuse('bad_response', 'the proxy ended the stream without a response');
    this.finish();
  }

  onWindow(bytes: number): void {
    this.timer.refresh();
    this.body.grant(bytes);
  }

  onError(code: string, message: string): void {
    if (this.done) return;
    if (code === 'proxy_unreachable') {
      this.options.onUnreachable?.();
      return this.fail(
        new ServiceUnavailableError(`your streaming proxy is not reachable: ${message}`, 'proxy_unreachable', {
          publicMessage: 'your streaming proxy is not reachable right now; try again in a moment',
        }),
      );
    }
    this.fail(new CatalogueError(code, message));
  }

  /** A short body of known length is read whole, then leaves with its head as one frame. */
  private collect(head: Omit<HttpRequestMessage, 'end'>): void {
    const chunks: Buffer[] = [];
    this.req.on('data', (chunk: Buffer) => {
      if (this.done) return;
      this.options.onBytes('up', chunk.byteLength);
      this.timer.refresh();
      chunks.push(chunk);
    });
    this.req.on('end', () => {
      if (this.done) return;
      // Node's parser held the body to its content-length, which fitsInline checked.
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      this.headSent = true;
      if (this.link.sendWhole({ ...head, end: true }, body)) return;
      // Headers too big for one frame: the same request the streaming way, within the first window.
      this.link.sendControl({ ...head, end: false });
      this.body.write(body);
      this.body.end(() => this.link.sendControl({ type: 'end', id: this.id }));
    });
  }

  private upload(): void {
    this.req.on('data', (chunk: Buffer) => {
      if (this.done) return;
      this.received += chunk.byteLength;
      this.options.onBytes('up', chunk.byteLength);
      if (this.received > this.options.maxBodyBytes) {
        this.link.sendControl({ type: 'cancel', id: this.id, reason: 'payload_too_large' });
        return this.fail(new PayloadTooLargeError(`the request body exceeds ${this.options.maxBodyBytes} bytes`));
      }
      this.timer.refresh();
      // No credit on the link stream: stop reading the caller until the proxy grants more.
      if (!this.body.write(chunk)) {
        this.req.pause();
        this.body.whenReady(() => {
          if (!this.done) this.req.resume();
        });
      }
    });
    this.req.on('end', () => {
      if (!this.done) this.body.end(() => this.link.sendControl({ type: 'end', id: this.id }));
    });
  }

  private silent(): void {
    if (this.done) return;
    // A caller slow to read holds the answer back through credit: not the proxy's silence.
    if (this.toCaller.waiting > 0) {
      this.timer.refresh();
      return;
    }
    this.link.sendControl({ type: 'cancel', id: this.id, reason: 'timeout' });
    this.onError('proxy_unreachable', 'the streaming proxy stopped answering');
  }

  /** The answer's head was no answer: the stream is cancelled and the caller gets a 502. */
  private refuse(code: string, message: string): void {
    this.link.sendControl({ type: 'cancel', id: this.id, reason: code });
    this.fail(new CatalogueError(code, message));
  }

  private cancel(reason: string): void {
    if (this.headSent) this.link.sendControl({ type: 'cancel', id: this.id, reason });
    this.cleanup();
  }

  private finish(body?: Buffer): void {
    this.cleanup();
    this.res.end(body);
  }

  /** Before the answer's head: the catalogue's answer; after it: a broken stream, never a clean end. */
  private fail(error: RelayError): void {
    const started = this.started;
    this.cleanup();
    if (started) this.res.destroy();
    else sendError(this.res, error);
  }

  private cleanup(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.body.clear();
    if (!this.req.complete) this.req.resume();
    this.link.forget(this.id);
  }
}
