/**
 * One stream's answer on the long-poll transport: a streamed
 * `POST /api/bridge/respond/<bridgeId>/<streamId>` whose body is the head record
 * (`{status, headers}`), then the local server's body bytes exactly as they arrive.
 *
 * Pacing is the POST's own: when `write` says the socket is full, the local response pauses until
 * 'drain', and the relay stops reading while its web client is slow, so no credit messages travel
 * here. A failure before the head becomes an error head (`{error: {code, message}}`); a failure
 * mid-answer cuts the POST, which the relay turns into a broken stream, and is also reported
 * with the next heartbeat. A POST the relay refuses or cuts (the web client left, the stream
 * timed out) abandons the local request. A short answer may instead leave as one POST holding one
 * whole frame (`whole`, on a connection whose relay takes them: short-answer.ts), gathered with the
 * turn's other short answers into one POST where the relay takes batches (poll-answers.ts).
 */
import type http from 'node:http';
import {
  encodeResponseHead,
  encodeWhole,
  POLL_RESPONSE_CONTENT_TYPE,
  POLL_WHOLE_CONTENT_TYPE,
  responseHeadSchema,
  type ControlMessage,
  type Headers,
  type WholeHead,
} from '@ctll/protocol';
import { parseRelayError, UnsendableHeadError } from './errors';
import { readSmall, type RelayHttp } from './poll-http';
import type { StreamPort } from './stream-table';
import { MAX_ERROR_MESSAGE } from './ws-stream';
import type { AnswerBatcher } from './poll-answers';

/** The relay refuses a head record longer than this (it buffers at most 64 KiB waiting for it). */
const MAX_HEAD_BYTES = 60 * 1024;

/** What a port needs from its connection. */
export interface PollStreamHost {
  readonly http: RelayHttp;
  readonly bridgeId: string;
  /** Queues a control message for the next heartbeat. */
  sendControl(message: ControlMessage): void;
  /** The relay will not take this answer: stop the local request. */
  abandon(id: string, why?: string): void;
  /** The local server took `bytes` of request body, or the stream ended with `bytes` it never took. */
  bodyTaken(bytes: number): void;
  /** The stream is over: forget its port. */
  released(id: string): void;
  /** Gathers the turn's short answers into one POST, when the relay takes batches (poll-answers.ts). */
  readonly answers?: AnswerBatcher;
}

export class PollStreamPort implements StreamPort {
  private post: http.ClientRequest | undefined;
  /** Our side of the answer is complete: ended, or failed. */
  private finished = false;
  private disposed = false;
  /** Request body bytes handed to the local request that it has not taken yet. */
  private untaken = 0;

  constructor(
    private readonly id: string,
    private readonly host: PollStreamHost,
  ) {}

  head(status: number, headers: Headers, end: boolean): void {
    const head = { status, headers };
    // The relay would refuse a head it cannot carry and fail the stream with a vaguer 502; the
    // forwarder turns this throw into a target_failed error that says why.
    const checked = responseHeadSchema.safeParse(head);
    if (!checked.success) throw new UnsendableHeadError(checked.error.issues[0]?.message ?? 'invalid response head');
    const record = encodeResponseHead(head);
    if (record.byteLength > MAX_HEAD_BYTES) throw new UnsendableHeadError(`response head of ${record.byteLength} bytes is too large`);
    this.start(record, end);
  }

  /** The whole answer as one POST of one whole frame; false (nothing sent) when its head is too big for one. */
  whole(head: WholeHead, body: Buffer): boolean {
    const frame = encodeWhole(head, body);
    if (!frame) return false;
    const alone = () => this.start(frame, true, POLL_WHOLE_CONTENT_TYPE);
    if (this.host.answers) {
      // Our side is complete: what is left is the batch's to send.
      this.finished = true;
      this.host.answers.add(this.id, frame, alone);
    } else {
      alone();
    }
    return true;
  }

  data(chunk: Buffer): boolean {
    if (!this.post || this.finished) return true;
    return this.post.write(chunk);
  }

  whenReady(resume: () => void): void {
    // A POST that dies instead of draining abandons the stream, which ends the wait too.
    if (!this.post || this.finished || !this.post.writableNeedDrain) resume();
    else this.post.once('drain', resume);
  }

  end(): void {
    this.finished = true;
    this.post?.end();
  }

  fail(code: string, message: string): void {
    const text = message.slice(0, MAX_ERROR_MESSAGE);
    if (!this.post) {
      this.start(encodeResponseHead({ error: { code, message: text } }), true);
      return;
    }
    if (this.finished) return;
    this.finished = true;
    this.host.sendControl({ type: 'error', id: this.id, code, message: text });
    this.post.destroy();
  }

  /** Request body bytes for this stream arrived in a poll answer (the connection checks them against the batch). */
  received(bytes: number): void {
    this.untaken += bytes;
  }

  whenFlushed(done: () => void): void {
    // The POST's own backpressure paces the answer: nothing waits here.
    done();
  }

  taken(bytes: number): void {
    this.untaken -= bytes;
    this.host.bodyTaken(bytes);
  }

  grant(): void {
    // No credit messages on this transport: the POST's backpressure paces the answer.
  }

  blocked(): void {
    // On this transport the relay grows request bodies' windows itself, as polls take the bytes
    // (protocol/src/stream-window.ts); it sends no `blocked`.
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.host.bodyTaken(this.untaken);
    this.untaken = 0;
    this.host.released(this.id);
    // Aborted before our answer was complete: the relay must not wait for the rest.
    if (!this.finished) this.post?.destroy();
  }

  private start(record: Buffer, end: boolean, contentType = POLL_RESPONSE_CONTENT_TYPE): void {
    const post = this.host.http.request('POST', `respond/${this.host.bridgeId}/${this.id}`, {
      'content-type': contentType,
      ...(end ? { 'content-length': record.byteLength } : {}),
    });
    this.post = post;
    // Answers may pause for as long as the model thinks; the relay's REQUEST_TIMEOUT_MS judges silence.
    post.setTimeout(0);
    post.on('response', (res) => this.onAnswer(res));
    post.on('error', (error: NodeJS.ErrnoException) => {
      if (this.finished) return;
      this.host.abandon(this.id, `the relay stopped taking the answer to ${this.id}: ${error.code ?? error.message}`);
    });
    if (end) {
      this.finished = true;
      post.end(record);
    } else {
      post.write(record);
    }
  }

  private onAnswer(res: http.IncomingMessage): void {
    const status = res.statusCode ?? 0;
    res.on('error', () => undefined); // a cut answer to a finished POST changes nothing
    if (status === 200) {
      res.resume();
      return;
    }
    void readSmall(res).then((text) => {
      // Usually the relay no longer waits for this answer (the web client left, or the stream timed
      // out: 404, or a 503 for the cut); only a 400 says something about what we sent.
      const error = parseRelayError(text);
      const why = status === 400 ? `the relay refused the answer to ${this.id}: ${error?.message ?? text.slice(0, 200)}` : undefined;
      this.host.abandon(this.id, why);
    });
  }
}
