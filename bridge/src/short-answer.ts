/**
 * Short answers as whole frames (protocol/src/tunnel-whole.ts): wraps a stream's port so that an
 * answer whose head declares a content-length within the inline limit is held — head and body,
 * at most that limit — until the local server ends it, then leaves as ONE whole frame instead of
 * head, data and end. Used only on a connection whose relay said it takes whole frames.
 *
 * An answer that outgrows its declared length, or trickles in for longer than HOLD_LIMIT_MS (protocol), is
 * released on its next chunk to stream as before, so a slow short answer still reaches its caller
 * as it comes; an answer without a length (a streamed generation) is never held. Holding needs no
 * credit: the held bytes are at most the inline limit, far within a stream's first window, and the
 * whole frame spends none (tunnel-whole.ts).
 */
import { heldLength, httpResponseSchema, outgrewHold, type Headers, type WholeHead } from '@ctll/protocol';
import { UnsendableHeadError } from './errors';
import type { StreamPort } from './stream-table';

/** Sends a whole answer; false (nothing sent) when its head is too big for one frame. */
export type SendWholeAnswer = (head: WholeHead, body: Buffer) => boolean;

interface Held {
  head: WholeHead & { type: 'http_response' };
  chunks: Buffer[];
  bytes: number;
  declared: number;
  since: number;
}

export function holdShortAnswers(id: string, port: StreamPort, sendWhole: SendWholeAnswer): StreamPort {
  let held: Held | undefined;

  /** The held answer goes the streaming way after all: the head, then what arrived of the body. */
  const release = (): boolean => {
    const { head, chunks } = held!;
    held = undefined;
    port.head(head.status, head.headers, false);
    let ready = true;
    for (const chunk of chunks) ready = port.data(chunk);
    return ready;
  };

  return {
    head(status: number, headers: Headers, end: boolean) {
      const declared = heldLength(headers);
      if (end || declared === undefined) return port.head(status, headers, end);
      const head = { type: 'http_response' as const, id, status, headers, end: true as const };
      // Checked now, as the streaming head would be: the forwarder turns the throw into target_failed.
      const checked = httpResponseSchema.safeParse(head);
      if (!checked.success) throw new UnsendableHeadError(checked.error.issues[0]?.message ?? 'invalid response head');
      held = { head, chunks: [], bytes: 0, declared, since: Date.now() };
    },
    data(chunk: Buffer) {
      if (!held) return port.data(chunk);
      held.chunks.push(chunk);
      held.bytes += chunk.byteLength;
      if (outgrewHold(held)) return release();
      return true;
    },
    whenReady(resume: () => void) {
      if (held) resume();
      else port.whenReady(resume);
    },
    end() {
      if (held) {
        const body = held.chunks.length === 1 ? held.chunks[0] : Buffer.concat(held.chunks, held.bytes);
        if (sendWhole(held.head, body)) {
          held = undefined;
          return;
        }
        release();
      }
      port.end();
    },
    fail(code: string, message: string) {
      held = undefined;
      port.fail(code, message);
    },
    received: (bytes) => port.received(bytes),
    taken: (bytes) => port.taken(bytes),
    grant: (bytes) => port.grant(bytes),
    blocked: () => port.blocked(),
    whenFlushed: (done) => port.whenFlushed(done),
    dispose: () => {
      held = undefined;
      port.dispose();
    },
  };
}
