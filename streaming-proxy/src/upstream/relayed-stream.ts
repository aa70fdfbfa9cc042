/**
 * One request of api-backend's frame link carried on to the desktop, with frames on both sides:
 * HTTP was parsed once, at api-backend, and is not parsed here. The stream has an id on
 * the frame link (api-backend's) and one on the desktop's link (the correlator's); frames are
 * passed through with the id swapped, never re-parsed as HTTP.
 *
 * Credit is end to end: request bytes from api-backend are granted back only once the desktop's
 * credit let them go on, and answer bytes from the desktop only once api-backend's credit let
 * them go on, so this proxy holds at most one window plus one frame per direction and stream.
 * Both peers' credit is enforced (FlowControlError closes the link that broke it).
 * REQUEST_TIMEOUT_MS measures silence (waiting for the answer to start, or a gap between chunks),
 * never the length of a generation. The stats, the desktop link's counters and so the audit's
 * byte counts are kept here.
 *
 * Whole frames (protocol/src/whole-frame.ts) on the frame link: a whole request goes on to the
 * desktop as a whole frame when its bridge takes them (tunnel-whole.ts), else its body goes at once
 * on the desktop's first window, which it fits by the inline limit. An answer
 * whose head declares a content-length within that limit is held (head and body, at most the limit)
 * until the desktop's end, then goes to api-backend as one whole frame; one that outgrows its
 * declared length or trickles in for more than HOLD_LIMIT_MS (protocol), or any answer without a length (a
 * streamed generation), streams on credit as before.
 */
import {
  BodySender,
  CatalogueError,
  heldLength,
  INITIAL_WINDOW,
  outgrewHold,
  ReceiveCredit,
  receiveGrowth,
  sendGrowth,
  type ControlMessage,
  type HttpRequestMessage,
  type HttpResponseMessage,
  type RelayError,
  type WholeHead,
} from '@ctll/protocol';
import type { StreamHandler } from '../tunnel/correlator';
import type { DesktopLink } from '../tunnel/desktop-link';
import type { ProxyStats } from '../stats';
import type { Logger } from '../logger';
import { CreditHop } from './credit-hop';
import { sendErrorAnswer } from './error-answer';

/** How a stream talks back to api-backend. */
export interface UpstreamSender {
  sendControl(message: ControlMessage): void;
  sendData(id: string, payload: Buffer): void;
  /** Whether api-backend takes whole frames. */
  readonly acceptsWhole: boolean;
  /** False (nothing sent) when the head is too big for one frame. */
  sendWhole(head: WholeHead, body: Buffer): boolean;
}

/** What api-backend's frames for one stream do to it, wherever the stream goes on to. */
export interface UpstreamStream {
  /** Request body bytes; throws FlowControlError past the credit granted. */
  upstreamData(payload: Buffer): void;
  upstreamEnd(): void;
  /** Throws FlowControlError for a grant beyond what was sent. */
  upstreamWindow(bytes: number): void;
  /** The caller went away (or the frame link closed). */
  upstreamCancel(reason: string): void;
}

/** A short answer held back until its end, to go to api-backend as one whole frame. */
interface HeldAnswer {
  head: HttpResponseMessage;
  chunks: Buffer[];
  bytes: number;
  /** The content-length the head declared. */
  declared: number;
  /** When the head arrived (Date.now()). */
  since: number;
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

export class RelayedStream implements StreamHandler, UpstreamStream {
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
  /** The desktop's answer head arrived. */
  private started = false;
  /** api-backend has the answer's head (it may be held while `held` is set). */
  private headSent = false;
  private held: HeldAnswer | undefined;
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
    // Over the internet the desktop's side is where a window can bind: there, if both ends
    // agreed, windows grow (stream-window.ts).
    this.toDesktop = new BodySender(
      (slice) => this.link.sendData(this.desktopId, slice),
      INITIAL_WINDOW,
      sendGrowth(link.windows, () => this.link.sendControl({ type: 'blocked', id: this.desktopId })),
    );
    this.fromUpstream = new ReceiveCredit((bytes) => this.upstream.sendControl({ type: 'window', id: this.id, bytes }));
    this.toUpstream = new BodySender((slice) => this.upstream.sendData(this.id, slice));
    this.fromDesktop = new ReceiveCredit(
      (bytes) => this.link.sendControl({ type: 'window', id: this.desktopId, bytes }),
      INITIAL_WINDOW,
      receiveGrowth(link.windows),
    );
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
  start(request: HttpRequestMessage, wholeBody?: Buffer): void {
    if (!wholeBody) {
      this.link.sendControl({ ...request, id: this.desktopId });
      return;
    }
    // Counted once, before the bytes leave in either form (a whole frame spends no credit).
    if (!this.countUp(wholeBody.byteLength)) return;
    if (this.link.sendWhole({ ...request, id: this.desktopId, end: true }, wholeBody)) return;
    // A bridge without whole frames (or a head too big for one): head, body and end as three messages.
    this.link.sendControl({ ...request, id: this.desktopId, end: wholeBody.byteLength === 0 });
    if (wholeBody.byteLength === 0) return;
    // A fresh stream's desktop credit takes the whole body at once (it fits the inline limit).
    this.toDesktop.write(wholeBody);
    this.toDesktop.end(() => this.link.sendControl({ type: 'end', id: this.desktopId }));
  }

  // --- from api-backend ---

  /** Request body bytes; throws FlowControlError past the credit this proxy granted. */
  upstreamData(payload: Buffer): void {
    if (this.done) return;
    this.fromUpstream.received(payload.byteLength);
    if (this.countUp(payload.byteLength)) this.up.forward(payload);
  }

  /** Counts request bytes on their way to the desktop; false when they crossed the body limit (aborted). */
  private countUp(bytes: number): boolean {
    this.bodyBytes += bytes;
    if (this.bodyBytes > this.options.maxBodyBytes) {
      this.abort(this.options.tooLarge());
      return false;
    }
    this.timer.refresh();
    this.options.stats.countBytes('bytesToDesktop', bytes);
    this.link.counters.bytesToDesktop += bytes;
    return true;
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
    const declared = heldLength(message.headers);
    if (!message.end && this.upstream.acceptsWhole && declared !== undefined) {
      this.held = { head: message, chunks: [], bytes: 0, declared, since: Date.now() };
      return;
    }
    this.sendHead(message);
    if (message.end) this.cleanup();
  }

  private sendHead(message: HttpResponseMessage): void {
    this.headSent = true;
    this.upstream.sendControl({ ...message, id: this.id });
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
    const held = this.held;
    if (held) {
      held.chunks.push(payload);
      held.bytes += payload.byteLength;
      // More than the head declared, or slower than a short answer: it streams on credit after all.
      if (outgrewHold(held)) this.release();
      return;
    }
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
    if (this.held && this.sendHeld(this.held)) return;
    this.toUpstream.end(() => {
      this.upstream.sendControl({ type: 'end', id: this.id });
      this.cleanup();
    });
  }

  onWindow(bytes: number): void {
    this.toDesktop.grant(bytes);
  }

  /** The desktop ran out of credit for the answer: its window may grow (stream-window.ts). */
  onBlocked(): void {
    if (!this.done) this.fromDesktop.blocked();
  }

  /** The held answer as one whole frame; false when its head is too big for one (then it streams). */
  private sendHeld(held: HeldAnswer): boolean {
    const body = held.chunks.length === 1 ? held.chunks[0] : Buffer.concat(held.chunks);
    if (!this.upstream.sendWhole({ ...held.head, id: this.id, end: true }, body)) {
      this.release();
      return false;
    }
    this.held = undefined;
    this.headSent = true;
    // The desktop's credit for these bytes is not granted back: its stream is closed.
    this.cleanup();
    return true;
  }

  /** The held answer goes on the streaming way after all: the head, then its bytes on credit. */
  private release(): void {
    const held = this.held!;
    this.held = undefined;
    this.sendHead(held.head);
    for (const chunk of held.chunks) this.down.forward(chunk);
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
    // A held answer's head never reached api-backend: the caller can still have a clean error answer.
    const started = this.headSent;
    this.cleanup();
    if (started) this.upstream.sendControl({ type: 'error', id: this.id, code, message });
    else sendErrorAnswer(this.upstream, this.id, error);
  }

  private cleanup(): void {
    if (this.done) return;
    this.done = true;
    this.held = undefined;
    clearTimeout(this.timer);
    this.toDesktop.clear();
    this.toUpstream.clear();
    this.fromDesktop.release();
    this.link.correlator.close(this.desktopId);
    this.options.stats.activeExchanges -= 1;
    this.options.stats.touch();
    this.options.onDone();
  }
}
