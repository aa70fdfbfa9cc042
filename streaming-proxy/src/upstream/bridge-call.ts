/**
 * A polling bridge's own call (register, poll, respond, answers, heartbeat) that came over api-backend's
 * frame link, marked with BRIDGE_CALL_HEADER (protocol/src/proxy-link.ts): the proxy answers it
 * itself, through the same routes an HTTP call reaches (http/bridge-routes.ts), handed a request
 * and an answer that are the link's stream (http/bridge-exchange.ts). No HTTP is parsed here.
 *
 * Credit is held as on every stream of the link: request body bytes are granted back to
 * api-backend once the routes read them, or, for a streamed answer the routes pass on to its web
 * client (creditOnRelease), only once they have left this proxy, so the proxy holds at most one
 * window of it; and the answer's body leaves only while api-backend's credit lasts. A short answer
 * whose end is known in the turn it was written (every JSON answer, most poll batches) goes as one
 * whole frame when api-backend takes them.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import {
  BodySender,
  detached,
  fitsInline,
  ReceiveCredit,
  TunnelErrorCode,
  type HttpRequestMessage,
  type HttpResponseMessage,
} from '@ctll/protocol';
import type { BridgeHandler, BridgeRequest, BridgeResponse } from '../http/bridge-exchange';
import { sendError } from '../http/respond';
import type { Logger } from '../logger';
import type { UpstreamSender, UpstreamStream } from './relayed-stream';

export class BridgeCall implements UpstreamStream {
  private readonly req: LinkRequest;
  private readonly res: LinkResponse;
  private over = false;

  constructor(
    id: string,
    upstream: UpstreamSender,
    private readonly onDone: () => void,
  ) {
    const credit = new ReceiveCredit((bytes) => upstream.sendControl({ type: 'window', id, bytes }));
    this.res = new LinkResponse(id, upstream, () => this.done());
    this.req = new LinkRequest(credit, () => this.res.destroy());
  }

  /** `body` is a whole frame's body: all of the call's body, outside the stream's credit. */
  start(request: HttpRequestMessage, handler: BridgeHandler, logger: Logger, body?: Buffer): void {
    this.req.open(request, body);
    const pathname = request.path.split('?')[0];
    handler(this.req, this.res, pathname)
      .then((handled) => {
        if (handled) return;
        this.req.resume();
        sendError(this.res, 'not_found', `no route ${request.method} ${pathname}`);
      })
      .catch((error: Error) => {
        logger.error('bridge call failed', { error: error.message });
        sendError(this.res, 'internal', 'internal error');
      });
  }

  upstreamData(payload: Buffer): void {
    this.req.data(payload);
  }

  upstreamEnd(): void {
    this.req.push(null);
  }

  upstreamWindow(bytes: number): void {
    this.res.grant(bytes);
  }

  upstreamCancel(): void {
    this.res.cancel();
    this.req.destroy();
    this.done();
  }

  private done(): void {
    if (this.over) return;
    this.over = true;
    this.onDone();
  }
}

/** The call's request: its head, and its body as api-backend sends it. */
class LinkRequest extends Readable implements BridgeRequest {
  headers: IncomingHttpHeaders = {};
  method = 'GET';
  /** Whether 'data' hands out bytes that came on credit (a whole frame's body did not). */
  private onCredit = true;
  /** Set once the reader said it credits bytes as they leave (creditOnRelease), not as it reads them. */
  private onRelease = false;

  constructor(
    private readonly credit: ReceiveCredit,
    /** The request ended before its body did (the routes gave up on it): its answer is broken off. */
    private readonly abandoned: () => void,
  ) {
    super();
  }

  creditOnRelease(): (bytes: number) => void {
    this.onRelease = true;
    return (bytes) => {
      if (this.onCredit) this.credit.consumed(bytes);
    };
  }

  open(request: HttpRequestMessage, body?: Buffer): void {
    this.headers = request.headers;
    this.method = request.method;
    if (body) {
      this.onCredit = false;
      if (body.byteLength > 0) this.push(body);
    }
    if (request.end || body) this.push(null);
  }

  /** A body frame; throws FlowControlError past the credit granted. */
  data(payload: Buffer): void {
    this.credit.received(payload.byteLength);
    // A reader that paused (a respond whose web client stopped reading) leaves it waiting here.
    this.push(this.readableFlowing === true && this.readableLength === 0 ? payload : detached(payload));
  }

  _read(): void {
    // Bytes are granted back as they are handed out (see emit), not here.
  }

  _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.readableEnded) this.abandoned();
    callback(error);
  }

  // Every chunk a reader takes leaves through a 'data' emit, whether it reads by listener, by
  // read() or by async iteration: the one place to learn that bytes were consumed.
  emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'data' && this.onCredit && !this.onRelease) this.credit.consumed((args[0] as Buffer).byteLength);
    return super.emit(event, ...args);
  }
}

/** The call's answer, as frames to api-backend. */
class LinkResponse extends EventEmitter implements BridgeResponse {
  headersSent = false;
  private readonly extra: Record<string, string> = {};
  private head: HttpResponseMessage | undefined;
  private readonly body: BodySender;
  /** Written before the head left: sent with it, whole when the answer also ended by then. */
  private pending: Buffer[] = [];
  private flushed = false;
  private ended = false;
  private closed = false;

  constructor(
    private readonly id: string,
    private readonly upstream: UpstreamSender,
    private readonly onClose: () => void,
  ) {
    super();
    this.body = new BodySender((slice) => upstream.sendData(id, slice));
  }

  setHeader(name: string, value: string | number): this {
    this.extra[name.toLowerCase()] = String(value);
    return this;
  }

  writeHead(status: number, headers: OutgoingHttpHeaders = {}): this {
    if (this.headersSent) throw new Error('the answer head was written already');
    this.headersSent = true;
    const all: Record<string, string | string[]> = { ...this.extra };
    for (const [name, value] of Object.entries(headers)) {
      if (value !== undefined) all[name.toLowerCase()] = Array.isArray(value) ? value : String(value);
    }
    this.head = { type: 'http_response', id: this.id, status, headers: all, end: false };
    // Whatever the routes write in this turn goes with the head.
    process.nextTick(() => this.flush());
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (!this.headersSent) this.writeHead(200);
    if (this.closed || this.ended) return false;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (!this.flushed) this.pending.push(bytes);
    else this.body.write(bytes);
    return true;
  }

  end(chunk?: Buffer | string): this {
    if (chunk !== undefined) this.write(chunk);
    if (!this.headersSent) this.writeHead(200);
    if (this.closed || this.ended) return this;
    this.ended = true;
    if (this.flushed) this.endStream();
    else this.flush();
    return this;
  }

  destroy(): this {
    if (this.closed) return this;
    if (this.flushed) {
      this.upstream.sendControl({ type: 'error', id: this.id, code: TunnelErrorCode.TargetFailed, message: 'the streaming proxy broke off its answer' });
    } else {
      // No head left yet: api-backend turns the error into its catalogue's answer.
      this.upstream.sendControl({ type: 'error', id: this.id, code: 'internal', message: 'the streaming proxy gave up on this call' });
    }
    this.cancel();
    return this;
  }

  /** Answer credit from api-backend; throws FlowControlError for a forged grant. */
  grant(bytes: number): void {
    this.body.grant(bytes);
  }

  /** api-backend's caller went away, or the link closed: nothing more leaves. */
  cancel(): void {
    if (this.closed) return;
    this.closed = true;
    this.body.clear();
    this.pending = [];
    this.emit('close');
    this.onClose();
  }

  private flush(): void {
    if (this.flushed || this.closed || !this.head) return;
    this.flushed = true;
    const pending = this.pending;
    this.pending = [];
    const bytes = pending.reduce((sum, part) => sum + part.byteLength, 0);
    if (this.ended && this.upstream.acceptsWhole && fitsInline(bytes)) {
      const whole = pending.length === 1 ? pending[0] : Buffer.concat(pending, bytes);
      if (this.upstream.sendWhole({ ...this.head, end: true }, whole)) return this.finish();
    }
    this.upstream.sendControl({ ...this.head, end: this.ended && bytes === 0 });
    if (this.ended && bytes === 0) return this.finish();
    for (const part of pending) this.body.write(part);
    if (this.ended) this.endStream();
  }

  /** `end` follows the last body frame, once credit let it go. */
  private endStream(): void {
    this.body.end(() => {
      this.upstream.sendControl({ type: 'end', id: this.id });
      this.finish();
    });
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('finish');
    this.emit('close');
    this.onClose();
  }
}
