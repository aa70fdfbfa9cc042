/**
 * One request of api-backend's frame link carried on to the desktop: the frame path's twin of
 * relay/exchange.ts, with frames on both sides instead of HTTP on one. The stream has an id on
 * the frame link (api-backend's) and one on the desktop's link (the correlator's); frames are
 * passed through with the id swapped, never re-parsed as HTTP.
 *
 * Credit is end to end: request bytes from api-backend are granted back only once the desktop's
 * credit let them go on, and answer bytes from the desktop only once api-backend's credit let
 * them go on, so this proxy holds at most one window plus one frame per direction and stream.
 * Both peers' credit is enforced (FlowControlError closes the link that broke it).
 * REQUEST_TIMEOUT_MS, the stats, the link counters and the audit's counts are kept as
 * Exchange keeps them.
 */
import {
  BodySender,
  CatalogueError,
  errorBody,
  ReceiveCredit,
  type ControlMessage,
  type HttpRequestMessage,
  type HttpResponseMessage,
  type RelayError,
} from '@ctll/protocol';
import type { StreamHandler } from '../tunnel/correlator';
import type { DesktopLink } from '../tunnel/desktop-link';
import type { ProxyStats } from '../stats';
import type { Logger } from '../logger';

/** How a stream talks back to api-backend. */
export interface UpstreamSender {
  sendControl(message: ControlMessage): void;
  sendData(id: string, payload: Buffer): void;
}

export interface RelayedStreamOptions {
  requestTimeoutMs: number;
  maxBodyBytes: number;
  tooLarge: () => RelayError;
  stats: ProxyStats;
  logger: Logger;
  /** The stream is over (its slot and its entry on the frame link are freed). */
  onDone: () => void;
}

export class RelayedStream implements StreamHandler {
  private readonly desktopId: string;
  /** The request body towards the desktop, on the desktop's credit. */
  private readonly toDesktop: BodySender;
  /** What api-backend sent of the request body, granted back once it went on. */
  private readonly fromUpstream: ReceiveCredit;
  /** The answer body towards api-backend, on api-backend's credit. */
  private readonly toUpstream: BodySender;
  /** What the desktop sent of the answer, granted back once it went on. */
  private readonly fromDesktop: ReceiveCredit;
  private readonly timer: NodeJS.Timeout;
  private started = false;
  private done = false;
  /** Request bytes from api-backend on to the desktop. */
  private readonly up: CreditHop;
  /** Answer bytes from the desktop on to api-backend. */
  private readonly down: CreditHop;
  private bodyBytes = 0;

  constructor(
    readonly id: string,
    private readonly upstream: UpstreamSender,
    private readonly link: DesktopLink,
    private readonly options: RelayedStreamOptions,
  ) {
    this.desktopId = link.correlator.open(this);
    this.toDesktop = new BodySender((slice) => this.link.sendData(this.desktopId, slice));
    this.fromUpstream = new ReceiveCredit((bytes) => this.upstream.sendControl({ type: 'window', id: this.id, bytes }));
    this.toUpstream = new BodySender((slice) => this.upstream.sendData(this.id, slice));
    this.fromDesktop = new ReceiveCredit((bytes) => this.link.sendControl({ type: 'window', id: this.desktopId, bytes }));
    const live = () => !this.done;
    this.up = new CreditHop(this.fromUpstream, this.toDesktop, live);
    this.down = new CreditHop(this.fromDesktop, this.toUpstream, live);
    this.timer = setTimeout(() => this.silenceTimeout(), options.requestTimeoutMs);
    options.stats.countRequest();
    link.counters.requests += 1;
    options.stats.activeExchanges += 1;
    options.stats.touch();
  }

  /** The request head, as api-backend wrote it once at the edge, goes on under the desktop's id. */
  start(request: HttpRequestMessage): void {
    this.link.sendControl({ ...request, id: this.desktopId });
  }

  // --- from api-backend ---

  /** Request body bytes; throws FlowControlError past the credit this proxy granted. */
  upstreamData(payload: Buffer): void {
    if (this.done) return;
    this.fromUpstream.received(payload.byteLength);
    this.bodyBytes += payload.byteLength;
    if (this.bodyBytes > this.options.maxBodyBytes) {
      this.abort(this.options.tooLarge());
      return;
    }
    this.timer.refresh();
    this.options.stats.countBytes('bytesToDesktop', payload.byteLength);
    this.link.counters.bytesToDesktop += payload.byteLength;
    this.up.forward(payload);
  }

  upstreamEnd(): void {
    if (this.done) return;
    this.toDesktop.end(() => this.link.sendControl({ type: 'end', id: this.desktopId }));
  }

  /** api-backend's caller took answer bytes; throws FlowControlError for a grant beyond what was sent. */
  upstreamWindow(bytes: number): void {
    this.toUpstream.grant(bytes);
  }

  /** The caller went away (or the frame link closed): the desktop stops generating. */
  upstreamCancel(reason: string): void {
    if (this.done) return;
    this.link.sendControl({ type: 'cancel', id: this.desktopId, reason });
    this.cleanup();
  }

  // --- from the desktop (StreamHandler) ---

  onResponse(message: HttpResponseMessage): void {
    if (this.done || this.started) return;
    this.started = true;
    this.timer.refresh();
    this.upstream.sendControl({ ...message, id: this.id });
    if (message.end) this.cleanup();
  }

  onData(payload: Buffer): void {
    if (this.done) return;
    this.fromDesktop.received(payload.byteLength);
    if (!this.started) {
      this.link.sendControl({ type: 'cancel', id: this.desktopId, reason: 'data before http_response' });
      this.fail('bad_response', 'the desktop sent body data before the response head');
      return;
    }
    this.timer.refresh();
    this.options.stats.countBytes('bytesFromDesktop', payload.byteLength);
    this.link.counters.bytesFromDesktop += payload.byteLength;
    // Credit goes back to the desktop only once api-backend's caller has taken the bytes.
    this.down.forward(payload);
  }

  onEnd(): void {
    if (this.done) return;
    if (!this.started) {
      this.fail('bad_response', 'the desktop ended the stream without a response');
      return;
    }
    // The desktop is done; the stream stays on the frame link until its last frames had credit.
    this.link.correlator.close(this.desktopId);
    this.toUpstream.end(() => {
      this.upstream.sendControl({ type: 'end', id: this.id });
      this.cleanup();
    });
  }

  onWindow(bytes: number): void {
    this.toDesktop.grant(bytes);
  }

  onError(code: string, message: string): void {
    if (this.done) return;
    this.fail(code, message);
  }

  /** Ends the stream for a reason found here (a limit crossed): the desktop cancels. */
  abort(error: RelayError): void {
    if (this.done) return;
    this.link.sendControl({ type: 'cancel', id: this.desktopId, reason: error.code });
    this.fail(error.code, error.message, error);
  }

  private silenceTimeout(): void {
    if (this.done) return;
    // A caller slow to read holds the desktop back through credit: our backpressure, not silence.
    if (this.down.holding > 0) {
      this.timer.refresh();
      return;
    }
    const waited = `${this.options.requestTimeoutMs} ms`;
    this.link.sendControl({ type: 'cancel', id: this.desktopId, reason: 'timeout' });
    if (this.started) this.options.logger.info('answer stalled; ending the stream', { stream: this.desktopId, waited });
    this.fail('desktop_timeout', `the desktop did not answer within ${waited}`);
  }

  /** Before the answer's head: the catalogue's answer for `code`; after it: a broken stream. */
  private fail(code: string, message: string, error: RelayError = new CatalogueError(code, message)): void {
    const started = this.started;
    this.cleanup();
    if (started) this.upstream.sendControl({ type: 'error', id: this.id, code, message });
    else sendErrorAnswer(this.upstream, this.id, error);
  }

  private cleanup(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.toDesktop.clear();
    this.toUpstream.clear();
    this.link.correlator.close(this.desktopId);
    this.options.stats.activeExchanges -= 1;
    this.options.stats.touch();
    this.options.onDone();
  }
}

/**
 * A refusal as the HTTP path answers it (status, Retry-After, `{error: {code, message}}`), in
 * frames: a head, the body in one frame (well within the stream's first credit), the end.
 */
export function sendErrorAnswer(upstream: UpstreamSender, id: string, error: unknown): void {
  const { status, body, headers } = errorBody(error);
  const text = Buffer.from(JSON.stringify(body));
  upstream.sendControl({
    type: 'http_response',
    id,
    status,
    headers: { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': String(text.byteLength) },
    end: false,
  });
  upstream.sendData(id, text);
  upstream.sendControl({ type: 'end', id });
}

/**
 * One direction of a stream: bytes received on one peer's credit go on within the other peer's,
 * and the first peer's credit comes back only for bytes that went on, so a slow side holds the
 * fast one back instead of this proxy buffering for it.
 */
class CreditHop {
  private held = 0;

  constructor(
    private readonly from: ReceiveCredit,
    private readonly to: BodySender,
    private readonly live: () => boolean,
  ) {}

  /** Bytes waiting for the far side's credit. */
  get holding(): number {
    return this.held;
  }

  forward(payload: Buffer): void {
    if (this.to.write(payload)) {
      this.from.consumed(payload.byteLength);
      return;
    }
    if (this.held === 0) {
      this.to.whenReady(() => {
        const bytes = this.held;
        this.held = 0;
        if (this.live()) this.from.consumed(bytes);
      });
    }
    this.held += payload.byteLength;
  }
}
