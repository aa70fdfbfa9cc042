/**
 * Short answers that are ready in the same event-loop turn leave in one
 * `POST /api/bridge/answers/<bridgeId>` (protocol/src/poll.ts) instead of one POST each: under load
 * the local server's answers arrive many to a turn, and every POST is an HTTP exchange for the
 * bridge, api-backend and the proxy. A lone answer still goes as its own whole POST, as it would
 * without batches, so a single call waits for nothing: the batch leaves at the end of the turn.
 * Used only on a connection whose relay said `answers: true`.
 *
 * The relay takes each answer on its own and names the ones it refused; those, and every answer of
 * a batch that failed as a whole, are abandoned as a refused single POST would be.
 */
import type http from 'node:http';
import { answerBatchResultSchema, MAX_BATCHED_ANSWERS, POLL_BATCH_CONTENT_TYPE, recordHeader } from '@ctll/protocol';
import { parseRelayError } from './errors';
import { readSmall, type RelayHttp } from './poll-http';

export interface AnswerBatchHost {
  readonly http: RelayHttp;
  readonly bridgeId: string;
  /** The relay will not take this answer: stop the local request. */
  abandon(id: string, why?: string): void;
}

interface Ready {
  id: string;
  frame: Buffer;
  /** Sends this answer alone, the way it would go without batches. */
  alone: () => void;
}

export class AnswerBatcher {
  private ready: Ready[] = [];
  private scheduled = false;

  constructor(private readonly host: AnswerBatchHost) {}

  /** Queues a whole frame holding stream `id`'s whole answer; it leaves at the end of this turn. */
  add(id: string, frame: Buffer, alone: () => void): void {
    this.ready.push({ id, frame, alone });
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const ready = this.ready;
    this.ready = [];
    for (let at = 0; at < ready.length; at += MAX_BATCHED_ANSWERS) {
      const batch = ready.slice(at, at + MAX_BATCHED_ANSWERS);
      if (batch.length === 1) batch[0].alone();
      else this.post(batch);
    }
  }

  private post(batch: Ready[]): void {
    const parts: Buffer[] = [];
    for (const { frame } of batch) parts.push(recordHeader(frame.byteLength), frame);
    const body = Buffer.concat(parts);
    const post = this.host.http.request('POST', `answers/${this.host.bridgeId}`, { 'content-type': POLL_BATCH_CONTENT_TYPE, 'content-length': body.byteLength });
    const ids = batch.map(({ id }) => id);
    let settled = false;
    const lost = (why?: string) => {
      if (settled) return;
      settled = true;
      for (const id of ids) this.host.abandon(id, why && `${why} (the answer to ${id})`);
    };
    post.on('error', (error: NodeJS.ErrnoException) => lost(`the relay stopped taking a batch of answers: ${error.code ?? error.message}`));
    post.on('response', (res: http.IncomingMessage) => {
      res.on('error', () => undefined);
      void readSmall(res).then((text) => {
        if (res.statusCode !== 200) {
          const error = parseRelayError(text);
          return lost(res.statusCode === 400 ? `the relay refused a batch of answers: ${error?.message ?? text.slice(0, 200)}` : undefined);
        }
        settled = true;
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        const result = answerBatchResultSchema.safeParse(parsed);
        if (!result.success) return;
        // Refused because the request no longer waits: as for a single answer's 404, nothing to say.
        for (const { id, code, message } of result.data.refused) {
          this.host.abandon(id, code === 'malformed_answer' ? `the relay refused the answer to ${id}: ${message}` : undefined);
        }
      });
    });
    post.end(body);
  }
}
