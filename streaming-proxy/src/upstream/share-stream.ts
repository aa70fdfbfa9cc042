/**
 * One request of api-backend's frame link carried on to the user's zrok share, for while no
 * desktop tunnel is connected: frames from api-backend, HTTP to the share, frames back. The
 * promises are the desktop's (relayed-stream.ts): credit end to end (api-backend's request bytes
 * are granted back only once the share's socket took them, and the share's answer is paused while
 * api-backend has not granted credit for it), REQUEST_TIMEOUT_MS measures silence, never duration,
 * and a cancel from api-backend (the caller left) aborts the request to the share, so the model
 * behind it stops generating. Headers cross under the same rules (protocol/src/headers.ts): the
 * request's were filtered at the edge, the answer's are filtered here.
 *
 * A share is picked asynchronously (the directory may look again first); frames for the stream
 * that arrive meanwhile wait here, which their credit bounds to one window. As on the desktop's
 * way, a request counts (stats, usage) once it goes to a share, and the silence timer starts then:
 * a request refused before (no share, a named target) is no relayed request.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import {
  BodySender,
  DrainCredit,
  bodyFraming,
  CatalogueError,
  errorMessage,
  endToEndHeaders,
  httpResponseSchema,
  ReceiveCredit,
  RelayError,
  type HttpRequestMessage,
} from '@ctll/protocol';
import type { ShareLease, ZrokPath } from '../zrok/zrok-path';
import { ShareAddressError } from '../zrok/guard';
import { describeFailure } from '../zrok/health-check';
import { sendErrorAnswer } from './error-answer';
import type { RelayedStreamOptions, UpstreamSender, UpstreamStream } from './relayed-stream';

export class ShareStream implements UpstreamStream {
  /** What api-backend sent of the request body, granted back once the share's socket took it. */
  private readonly fromUpstream: ReceiveCredit;
  /** The answer body towards api-backend, on api-backend's credit. */
  private readonly toUpstream: BodySender;
  /** The silence timer, from the moment the request goes to the share. */
  private timer: NodeJS.Timeout | undefined;
  private lease: ShareLease | undefined;
  private toShare: ClientRequest | undefined;
  /** Request bytes that arrived before a share was picked. */
  private early: Buffer[] = [];
  private upstreamEnded = false;
  /** Request bytes written to the share count as taken once its socket took them. */
  private readonly toShareCredit = new DrainCredit((bytes) => {
    if (!this.done) this.fromUpstream.consumed(bytes);
  });
  private headSent = false;
  private done = false;
  private bodyBytes = 0;

  constructor(
    readonly id: string,
    private readonly upstream: UpstreamSender,
    private readonly options: RelayedStreamOptions,
  ) {
    this.fromUpstream = new ReceiveCredit((bytes) => this.upstream.sendControl({ type: 'window', id: this.id, bytes }));
    this.toUpstream = new BodySender((slice) => this.upstream.sendData(this.id, slice));
  }

  /** Picks a share and sends it the request; without one the caller hears that the desktop is offline. */
  start(request: HttpRequestMessage, zrok: ZrokPath | undefined, wholeBody?: Buffer): void {
    if (wholeBody && wholeBody.byteLength > 0) {
      if (!this.countUp(wholeBody.byteLength)) return;
      this.early.push(wholeBody);
    }
    if (request.end) this.upstreamEnded = true;
    if (!zrok) return this.offline();
    zrok.lease(request.path).then(
      (lease) => {
        if (this.done) {
          // The caller left while a share was being looked for.
          if (lease && !(lease instanceof RelayError)) lease.release();
          return;
        }
        if (lease instanceof RelayError) return this.fail(lease);
        if (!lease) return this.offline();
        this.lease = lease;
        this.send(request, lease, wholeBody !== undefined);
      },
      (error: Error) => {
        this.options.logger.error('zrok fallback failed', { error: error.message });
        this.fail(new CatalogueError('internal', 'internal error'));
      },
    );
  }

  private send(request: HttpRequestMessage, lease: ShareLease, whole: boolean): void {
    const hasBody = whole ? this.early.length > 0 : !request.end;
    let toShare: ClientRequest;
    try {
      toShare = lease.client.request(lease.share.url, {
        method: request.method,
        path: request.path,
        // Framed as the caller sent it: Node frames a GET or DELETE body only when told.
        headers: { ...request.headers, ...bodyFraming(request.headers, hasBody) },
      });
    } catch (error) {
      return this.unreachable(error as Error);
    }
    this.toShare = toShare;
    this.timer = setTimeout(() => this.silenceTimeout(), this.options.requestTimeoutMs);
    this.options.stats.countRequest();
    this.options.stats.activeExchanges += 1;
    this.options.stats.touch();
    toShare.on('response', (answer) => this.onResponse(answer));
    // Other 1xx heads are passed over by Node's client; a 101 would leave the caller waiting.
    toShare.on('upgrade', (_answer, socket) => {
      socket.destroy();
      this.switchingRefused();
    });
    toShare.on('error', (error) => this.onShareError(error));
    const early = this.early;
    this.early = [];
    // A whole frame's body was sent outside the stream's credit: nothing of it is granted back.
    for (const chunk of early) this.write(chunk, !whole);
    if (this.upstreamEnded) toShare.end();
  }

  // --- from api-backend ---

  /** Request body bytes; throws FlowControlError past the credit this proxy granted. */
  upstreamData(payload: Buffer): void {
    if (this.done) return;
    this.fromUpstream.received(payload.byteLength);
    if (!this.countUp(payload.byteLength)) return;
    if (this.toShare) this.write(payload);
    else this.early.push(payload);
  }

  upstreamEnd(): void {
    if (this.done) return;
    this.upstreamEnded = true;
    this.toShare?.end();
  }

  /** api-backend's caller took answer bytes; throws FlowControlError for a grant beyond what was sent. */
  upstreamWindow(bytes: number): void {
    this.toUpstream.grant(bytes);
  }

  /** The caller went away (or the frame link closed): the request to the share is aborted. */
  upstreamCancel(): void {
    if (this.done) return;
    this.cleanup();
    this.toShare?.destroy();
  }

  /** Holds the request body to MAX_BODY_BYTES; false when it crossed the limit (the stream failed). */
  private countUp(bytes: number): boolean {
    this.bodyBytes += bytes;
    if (this.bodyBytes <= this.options.maxBodyBytes) return true;
    this.fail(this.options.tooLarge());
    return false;
  }

  /** Credit goes back to api-backend only once the share's socket took the bytes: the backpressure. */
  private write(payload: Buffer, credited = true): void {
    const toShare = this.toShare!;
    this.timer?.refresh();
    this.options.stats.countBytes('bytesToDesktop', payload.byteLength);
    if (!credited) {
      toShare.write(payload);
      return;
    }
    this.toShareCredit.write(toShare, payload);
  }

  // --- from the share ---

  private onResponse(answer: IncomingMessage): void {
    if (this.done) {
      answer.resume();
      return;
    }
    if ((answer.statusCode ?? 0) < 200) {
      answer.destroy();
      return this.switchingRefused();
    }
    const head = httpResponseSchema.safeParse({
      type: 'http_response',
      id: this.id,
      status: answer.statusCode,
      headers: endToEndHeaders(answer.headers),
      end: false,
    });
    if (!head.success) {
      answer.destroy();
      return this.fail(new CatalogueError('bad_response', `the zrok share sent a response head the relay cannot carry: ${head.error.issues[0]?.message ?? 'invalid'}`));
    }
    this.headSent = true;
    this.timer?.refresh();
    this.upstream.sendControl(head.data);
    answer.on('data', (chunk: Buffer) => {
      if (this.done) return;
      this.timer?.refresh();
      this.options.stats.countBytes('bytesFromDesktop', chunk.byteLength);
      if (this.toUpstream.write(chunk)) return;
      // No credit from api-backend: the share waits until its caller took the bytes.
      answer.pause();
      this.toUpstream.whenReady(() => {
        if (!this.done) answer.resume();
      });
    });
    answer.on('end', () => {
      if (this.done) return;
      this.toUpstream.end(() => {
        this.upstream.sendControl({ type: 'end', id: this.id });
        this.cleanup();
      });
    });
    // A reset mid-answer is reported as an error here and as an incomplete close below.
    answer.on('error', () => undefined);
    answer.on('close', () => {
      // Cut off before its end: the caller must see a broken stream, never a clean end.
      if (!this.done && !answer.complete) this.fail(new CatalogueError('share_failed', 'the zrok share broke off its answer'));
    });
  }

  private switchingRefused(): void {
    this.fail(new CatalogueError('bad_response', 'the zrok share answered 101 Switching Protocols; only HTTP answers can be relayed'));
  }

  private onShareError(error: NodeJS.ErrnoException): void {
    if (this.done) return;
    if (this.headSent) return this.fail(new CatalogueError('share_failed', 'the zrok share broke off its answer'));
    this.unreachable(error);
  }

  /** Nothing came back from the share: mark it and tell the caller why. */
  private unreachable(error: NodeJS.ErrnoException): void {
    const detail = describeFailure(error);
    this.lease?.failed(detail);
    this.options.logger.info('zrok share did not answer', { share: this.lease?.share.shareId, error: detail });
    this.fail(
      error instanceof ShareAddressError
        ? new CatalogueError('share_address_refused', `the relay refused to connect to your zrok share: ${detail}`)
        : new CatalogueError('share_unreachable', `your zrok share did not answer: ${detail}`),
    );
  }

  private offline(): void {
    this.fail(new CatalogueError('desktop_offline', errorMessage('desktop_offline')));
  }

  private silenceTimeout(): void {
    if (this.done) return;
    // A caller slow to read holds the share back through credit: that is not the share's silence.
    if (!this.toUpstream.ready) {
      this.timer?.refresh();
      return;
    }
    const waited = `${this.options.requestTimeoutMs} ms`;
    if (this.headSent) this.options.logger.info('zrok answer stalled; ending the stream', { share: this.lease?.share.shareId, waited });
    this.fail(new CatalogueError('desktop_timeout', `your zrok share did not answer within ${waited}`));
  }

  /** Before the answer's head: the catalogue's answer for the error; after it: a broken stream. */
  private fail(error: RelayError): void {
    if (this.done) return;
    const started = this.headSent;
    this.cleanup();
    this.toShare?.destroy();
    if (started) this.upstream.sendControl({ type: 'error', id: this.id, code: error.code, message: error.message });
    else sendErrorAnswer(this.upstream, this.id, error);
  }

  private cleanup(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.early = [];
    this.toUpstream.clear();
    this.lease?.release();
    if (this.timer) {
      // It went to a share: it was counted among the active requests.
      this.options.stats.activeExchanges -= 1;
      this.options.stats.touch();
    }
    this.options.onDone();
  }
}
