/**
 * A desktop on the HTTP long-poll transport, as seen by the proxy.
 *
 * Messages for the desktop wait in a bounded queue; a waiting poll is answered the moment
 * something is queued (on the next tick, so messages queued together travel together), and an
 * idle poll is answered empty after the poll timeout. Flow control follows the transport: request
 * body data is credited back to its exchange once a poll has carried it away, and an answer's body
 * (a streamed POST) is paused while its exchange has not drained what it already got. A request
 * given up on before any poll took it (timed out, its caller gone) is withdrawn from the queue
 * rather than delivered with its cancel, so it never holds a queue slot. A desktop
 * that neither polls nor heartbeats for the grace period is dropped, and its waiting requests
 * fail at once with 503 instead of waiting for their timeout.
 *
 * Credit is enforced here too. The relay grants request-body credit itself, so a `window` a
 * desktop sends in a heartbeat is ignored (it could only forge credit). An answer POST is paused
 * once a window of it waits undrained; a body that still arrives past its credit is answered 400
 * and the whole link is dropped, as a WebSocket would be closed with 1008.
 *
 * Every request of a polling bridge carries its current token, which api-backend verifies and
 * whose expiry it passes on: the link's deadline follows the latest (credentials/deadline.ts). A
 * bridge that stops renewing is refused by api-backend at its next request; the deadline also
 * ends an answer still streaming on an old token, closing the link with TOKEN_EXPIRED_CLOSE.
 *
 * A bridge that registered with `whole: true` (tunnel-whole.ts) gets a short request as one whole
 * record (no credit to give back for it: its body spent none), and may POST a short answer as one
 * whole frame (respond-whole.ts).
 */
import {
  chunkSlices,
  controlFrame,
  dataRecordHead,
  detached,
  encodeWhole,
  FLOW_CONTROL_CLOSE_CODE,
  FLOW_CONTROL_CLOSE_REASON,
  FlowControlError,
  INITIAL_WINDOW,
  parseControl,
  parseResponseHead,
  POLL_BATCH_CONTENT_TYPE,
  POLL_STREAM_WINDOW,
  POLL_WHOLE_CONTENT_TYPE,
  RecordReader,
  recordHeader,
  TOKEN_EXPIRED_CLOSE,
  TunnelErrorCode,
  type ControlMessage,
  type WholeHead,
  type GrowingWindows,
} from '@ctll/protocol';
import { CredentialDeadline } from '../credentials/deadline';
import { Correlator } from './correlator';
import { LinkCounters } from './link-counters';
import type { DesktopLink } from './desktop-link';
import type { Logger } from '../logger';
import { sendError, sendJson } from '../http/respond';
import { respondWhole } from './respond-whole';
import { takeAnswerBatch } from './answer-batch';
import { PollWindows } from './poll-windows';
import type { BridgeRequest, BridgeResponse } from '../http/bridge-exchange';

export interface PollLinkOptions {
  id: string;
  client: string;
  /** The bridge process's own id (from its registration), if it sent one. */
  clientId?: string;
  pollTimeoutMs: number;
  graceMs: number;
  maxQueuedRequests: number;
  maxStreams: number;
  logger: Logger;
  /** When the credential of the registration expires (ms since the epoch); undefined: never. */
  credentialExpiresAt?: number;
  /** How long past its credential's expiry the link stays without a request bringing a newer one. */
  tokenGraceMs: number;
  /** The bridge registered with `whole: true` (and was told this proxy takes whole frames). */
  whole: boolean;
  /** The bridge registered with `answers: true` too (and was told this proxy takes batches of answers). */
  answers: boolean;
  /** The bridge registered with a `window` (stream-window.ts): request bodies' windows grow; undefined: fixed. */
  windows?: GrowingWindows;
  onClose: (link: PollLink, code: number, reason: string) => void;
}

/** Most bytes one poll answer carries (the rest waits for the next poll): one stream's most per answer. */
const MAX_BATCH_BYTES = POLL_STREAM_WINDOW;

interface Queued {
  /** The record's bytes in order: one buffer, or a data record's head and its payload. */
  parts: Buffer[];
  /** Their length together. */
  size: number;
  /** The stream the record belongs to, if any. */
  stream?: string;
  /** Body bytes of a data frame: credit to give back once delivered. */
  bytes: number;
  isRequest: boolean;
}

interface InboundBody {
  req: BridgeRequest;
  outstanding: number;
  /** Credits body bytes back to api-backend once they left (a frame-link call only). */
  release?: (bytes: number) => void;
}

export class PollLink implements DesktopLink {
  readonly transport = 'poll' as const;
  readonly id: string;
  readonly client: string;
  readonly clientId: string | undefined;
  readonly connectedAt = Date.now();
  readonly correlator: Correlator;
  readonly counters = new LinkCounters();
  private queue: Queued[] = [];
  private queuedRequests = 0;
  private waiting: { res: BridgeResponse; timer: NodeJS.Timeout } | undefined;
  private flushScheduled = false;
  private lastSeen = Date.now();
  private readonly watchdog: NodeJS.Timeout;
  private readonly inbound = new Map<string, InboundBody>();
  private readonly deadline: CredentialDeadline;
  private isClosed = false;
  private readonly growth: PollWindows | undefined;

  constructor(private readonly options: PollLinkOptions) {
    this.growth = options.windows && new PollWindows(options.windows.peer, options.windows.budget);
    this.id = options.id;
    this.client = options.client;
    this.clientId = options.clientId;
    this.correlator = new Correlator(`${options.id}.`, options.maxStreams, (message) =>
      options.logger.warn(message, { link: this.id }),
    );
    this.watchdog = setInterval(() => this.checkAlive(), Math.max(100, Math.floor(options.graceMs / 4)));
    this.watchdog.unref();
    this.deadline = new CredentialDeadline(options.credentialExpiresAt, options.tokenGraceMs, () => {
      options.logger.info('polling bridge credential expired and was not renewed; dropping it', { link: this.id });
      this.close(TOKEN_EXPIRED_CLOSE.code, TOKEN_EXPIRED_CLOSE.reason);
    });
  }

  /** A request of this bridge carried a credential expiring at `expiresAt` (undefined: never). */
  credential(expiresAt: number | undefined): void {
    this.deadline.extend(expiresAt);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get acceptsWhole(): boolean {
    return this.options.whole;
  }

  get windows(): GrowingWindows | undefined {
    return this.options.windows;
  }

  get queueFull(): boolean {
    return this.queuedRequests >= this.options.maxQueuedRequests;
  }

  sendControl(message: ControlMessage): void {
    if (this.isClosed) return;
    // Ours to act on when a poll comes (poll-windows.ts); the bridge never needs to hear of it.
    if (message.type === 'blocked') {
      this.growth?.blockedOn(message.id);
      return;
    }
    if (message.type === 'end' || message.type === 'cancel') this.growth?.ended(message.id);
    if (message.type === 'window') {
      // Credit for an answer body: the exchange drained it, so its POST may flow again.
      const body = this.inbound.get(message.id);
      if (body) {
        body.outstanding -= message.bytes;
        body.release?.(message.bytes);
        if (body.outstanding < INITIAL_WINDOW) body.req.resume();
      }
      return;
    }
    // A request given up on before any poll took it (it timed out, its caller left) is withdrawn
    // whole: the desktop never needs to hear of it, and it must not hold a queue slot.
    if (message.type === 'cancel' && this.withdraw(message.id)) return;
    const frame = controlFrame(message);
    const stream = 'id' in message ? message.id : undefined;
    this.enqueue({ ...asRecord(frame), stream, bytes: 0, isRequest: message.type === 'http_request' });
    if (message.type === 'cancel') this.inbound.get(message.id)?.req.destroy();
  }

  sendData(id: string, payload: Buffer): void {
    if (this.isClosed) return;
    // Waits for a poll as bytes of its own (not a view pinning a larger read), and is copied once,
    // into the poll answer.
    const head = dataRecordHead(id, payload.byteLength);
    this.enqueue({ parts: [head, detached(payload)], size: head.byteLength + payload.byteLength, stream: id, bytes: payload.byteLength, isRequest: false });
  }

  sendWhole(head: WholeHead, body: Buffer): boolean {
    if (this.isClosed || !this.options.whole) return false;
    const frame = encodeWhole(head, body);
    if (!frame) return false;
    // No credit to give back on delivery: a whole body spends none (tunnel-whole.ts).
    this.enqueue({ ...asRecord(frame), stream: head.id, bytes: 0, isRequest: head.type === 'http_request' });
    return true;
  }

  /** GET /bridge/poll/:id — answer now if anything waits, else hold the request. */
  poll(req: BridgeRequest, res: BridgeResponse): void {
    this.lastSeen = Date.now();
    if (this.waiting) this.answerEmpty(); // a newer poll replaces an older one
    if (this.queue.length > 0) {
      this.deliver(res);
      return;
    }
    const timer = setTimeout(() => this.answerEmpty(), this.options.pollTimeoutMs);
    this.waiting = { res, timer };
    req.on('close', () => {
      if (this.waiting?.res === res) {
        clearTimeout(timer);
        this.waiting = undefined;
        this.lastSeen = Date.now();
      }
    });
  }

  heartbeat(messages: unknown[]): void {
    this.lastSeen = Date.now();
    for (const raw of messages) {
      const parsed = parseControl(JSON.stringify(raw));
      // This transport returns request-body credit on delivery; a desktop's window could only forge more.
      if (parsed.ok && parsed.value.type === 'window') continue;
      if (parsed.ok) this.correlator.handleControl(parsed.value, this);
      else this.options.logger.warn('rejected a malformed heartbeat message', { link: this.id, reason: parsed.error });
    }
  }

  /** POST /bridge/respond/:id/:requestId — a head record, then the answer's raw body. */
  respond(requestId: string, req: BridgeRequest, res: BridgeResponse): void {
    this.lastSeen = Date.now();
    if (!this.correlator.has(requestId) || this.inbound.has(requestId)) {
      req.resume();
      sendError(res, 'unknown_request', `no request ${requestId} is waiting for an answer`);
      return;
    }
    if ((req.headers['content-type'] ?? '').startsWith(POLL_WHOLE_CONTENT_TYPE)) {
      this.respondWholeAnswer(requestId, req, res);
      return;
    }
    const reader = new RecordReader();
    let headDone = false;
    let finished = false;
    const body: InboundBody = { req, outstanding: 0, release: req.creditOnRelease?.() };
    // Registered now, not after the head: a second POST for the same request is refused above.
    this.inbound.set(requestId, body);
    const deliver = (chunk: Buffer) => {
      try {
        for (const slice of chunkSlices(chunk)) {
          if (slice.byteLength === 0) continue;
          body.outstanding += slice.byteLength;
          this.correlator.handleData(requestId, slice);
        }
      } catch (error) {
        if (!(error instanceof FlowControlError)) throw error;
        finished = true;
        this.inbound.delete(requestId);
        this.options.logger.warn('desktop broke flow control; dropping its link', { link: this.id, detail: error.message });
        // Read no more of it; the socket goes once the 400 is out.
        req.pause();
        res.setHeader('connection', 'close');
        sendError(res, 'flow_control', 'the answer went past its flow-control credit');
        res.once('finish', () => req.destroy());
        this.close(FLOW_CONTROL_CLOSE_CODE, FLOW_CONTROL_CLOSE_REASON);
        return;
      }
      if (body.outstanding >= INITIAL_WINDOW) req.pause();
    };
    const reject = (message: string) => {
      finished = true;
      req.resume();
      sendError(res, 'malformed_answer', message);
      this.correlator.handleControl({ type: 'error', id: requestId, code: TunnelErrorCode.BadMessage, message: `the desktop sent a malformed answer: ${message}` }, this);
    };

    req.on('data', (chunk: Buffer) => {
      this.lastSeen = Date.now();
      if (finished) return;
      if (headDone) return deliver(chunk);
      const records = reader.push(chunk, 1);
      if (!records.ok) return reject(records.error);
      if (records.value.length === 0) {
        if (reader.buffered > 64 * 1024) reject('response head too large');
        return;
      }
      const head = parseResponseHead(records.value[0]);
      if (!head.ok) return reject(head.error);
      headDone = true;
      if ('error' in head.value) {
        this.inbound.delete(requestId);
        finished = true;
        req.resume();
        this.correlator.handleControl({ type: 'error', id: requestId, code: head.value.error.code, message: head.value.error.message }, this);
        sendJson(res, 200, { ok: true });
        return;
      }
      this.correlator.handleControl({ type: 'http_response', id: requestId, status: head.value.status, headers: head.value.headers, end: false }, this);
      deliver(reader.takeRest());
    });
    req.on('end', () => {
      this.inbound.delete(requestId);
      if (finished) return;
      finished = true;
      if (!headDone) return reject('the answer ended before its head');
      this.correlator.handleControl({ type: 'end', id: requestId }, this);
      sendJson(res, 200, { ok: true });
    });
    req.on('close', () => {
      this.inbound.delete(requestId);
      if (finished) return;
      finished = true;
      this.correlator.handleControl({ type: 'error', id: requestId, code: TunnelErrorCode.TargetFailed, message: 'the desktop stopped sending its answer' }, this);
    });
  }

  /** POST /bridge/answers/:id — short answers ready at once, as one batch of whole frames. */
  answers(req: BridgeRequest, res: BridgeResponse): void {
    this.lastSeen = Date.now();
    takeAnswerBatch(req, res, {
      offered: this.options.answers,
      seen: () => (this.lastSeen = Date.now()),
      awaits: (requestId) => this.correlator.has(requestId) && !this.inbound.has(requestId),
      correlator: this.correlator,
      reply: this,
    });
  }

  /** A short answer POSTed as one whole frame; registered in `inbound` while it is read, as any answer. */
  private respondWholeAnswer(requestId: string, req: BridgeRequest, res: BridgeResponse): void {
    this.inbound.set(requestId, { req, outstanding: 0 });
    respondWhole(requestId, req, res, {
      offered: this.options.whole,
      seen: () => (this.lastSeen = Date.now()),
      settled: () => this.inbound.delete(requestId),
      correlator: this.correlator,
      reply: this,
    });
  }

  close(code: number, reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    clearInterval(this.watchdog);
    this.deadline.stop();
    if (this.waiting) this.answerEmpty();
    for (const body of this.inbound.values()) body.req.destroy();
    this.inbound.clear();
    this.queue = [];
    this.correlator.failAll('desktop_disconnected', 'the desktop stopped polling before it finished answering');
    this.growth?.close();
    this.options.onClose(this, code, reason);
  }

  /** Drops a stream's records if its `http_request` is still queued; true when it was. */
  private withdraw(stream: string): boolean {
    if (!this.queue.some((item) => item.isRequest && item.stream === stream)) return false;
    this.queue = this.queue.filter((item) => item.stream !== stream);
    this.queuedRequests -= 1;
    return true;
  }

  private enqueue(item: Queued): void {
    this.queue.push(item);
    if (item.isRequest) this.queuedRequests += 1;
    if (this.waiting && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        const waiting = this.waiting;
        if (!waiting) return;
        clearTimeout(waiting.timer);
        this.waiting = undefined;
        this.deliver(waiting.res);
      });
    }
  }

  private deliver(res: BridgeResponse): void {
    this.lastSeen = Date.now();
    const batch: Queued[] = [];
    const credits = new Map<string, number>();
    let bytes = 0;
    while (this.queue.length > 0 && (batch.length === 0 || bytes + this.queue[0].size <= MAX_BATCH_BYTES)) {
      const item = this.queue.shift()!;
      if (item.isRequest) this.queuedRequests -= 1;
      if (item.stream && item.bytes > 0) credits.set(item.stream, (credits.get(item.stream) ?? 0) + item.bytes);
      batch.push(item);
      bytes += item.size;
    }
    // One write: a write per record made api-backend relay each record's few bytes past its
    // 64 KiB of payload as a link frame and a socket write of their own.
    const answer = Buffer.allocUnsafe(bytes);
    let offset = 0;
    for (const item of batch) for (const part of item.parts) offset += part.copy(answer, offset);
    res.writeHead(200, { 'content-type': POLL_BATCH_CONTENT_TYPE, 'content-length': bytes, 'cache-control': 'no-store' });
    res.end(answer);
    // The desktop has the request body bytes now: let their exchanges send more.
    for (const [stream, granted] of credits) {
      const bytes = this.growth ? this.growth.credit(stream, granted) : granted;
      this.correlator.handleControl({ type: 'window', id: stream, bytes }, this);
    }
  }

  private answerEmpty(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    clearTimeout(waiting.timer);
    this.waiting = undefined;
    this.lastSeen = Date.now();
    if (!waiting.res.headersSent) {
      waiting.res.writeHead(204, { 'cache-control': 'no-store' });
      waiting.res.end();
    }
  }

  private checkAlive(): void {
    if (this.waiting) return; // a poll is open: the desktop is there
    if (Date.now() - this.lastSeen > this.options.graceMs) {
      this.options.logger.info('desktop stopped polling; dropping it', { link: this.id });
      this.close(1001, 'poll timeout');
    }
  }
}

/** A whole frame (control or whole) behind its record length, as a queue item's bytes. */
function asRecord(frame: Buffer): Pick<Queued, 'parts' | 'size'> {
  return { parts: [recordHeader(frame.byteLength), frame], size: 4 + frame.byteLength };
}
