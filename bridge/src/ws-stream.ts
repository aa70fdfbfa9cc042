/**
 * One stream's answer on the WebSocket: `http_response`, data frames, `end` (or `error`), paced by
 * the protocol's flow control. BodySender limits the answer we send to our credit (the relay
 * grants more with `window`); ReceiveCredit checks the request body against the credit we gave
 * and gives the relay more once the local request has taken it.
 */
import {
  BodySender,
  httpResponseSchema,
  INITIAL_WINDOW,
  ReceiveCredit,
  receiveGrowth,
  sendGrowth,
  type GrowingWindows,
  type ControlMessage,
  type Headers,
  type HttpResponseMessage,
} from '@ctll/protocol';
import { UnsendableHeadError } from './errors';
import type { StreamPort } from './stream-table';

/** What a WebSocket port sends through: the connection's two kinds of message. */
export interface FrameSender {
  sendControl(message: ControlMessage): void;
  sendData(id: string, payload: Buffer): void;
}

/** Longest `message` an error may carry (errorSchema); a longer one would itself be rejected. */
export const MAX_ERROR_MESSAGE = 2048;

/** `windows`: both ends grow windows (stream-window.ts); undefined keeps them fixed. */
export function wsStreamPort(id: string, sender: FrameSender, windows?: GrowingWindows): StreamPort {
  const body = new BodySender(
    (slice) => sender.sendData(id, slice),
    INITIAL_WINDOW,
    sendGrowth(windows, () => sender.sendControl({ type: 'blocked', id })),
  );
  const receiveCredit = new ReceiveCredit((bytes) => sender.sendControl({ type: 'window', id, bytes }), INITIAL_WINDOW, receiveGrowth(windows));
  return {
    head: (status: number, headers: Headers, end: boolean) => {
      const message: HttpResponseMessage = { type: 'http_response', id, status, headers, end };
      // The relay would reject a head it cannot carry (too many or too long headers) and leave the
      // caller waiting; the forwarder turns this throw into a target_failed error instead.
      const checked = httpResponseSchema.safeParse(message);
      if (!checked.success) throw new UnsendableHeadError(checked.error.issues[0]?.message ?? 'invalid response head');
      sender.sendControl(message);
    },
    data: (chunk) => body.write(chunk),
    whenReady: (resume) => body.whenReady(resume),
    end: () => body.end(() => sender.sendControl({ type: 'end', id })),
    fail: (code, message) => {
      body.clear();
      sender.sendControl({ type: 'error', id, code, message: message.slice(0, MAX_ERROR_MESSAGE) });
    },
    received: (bytes) => receiveCredit.received(bytes),
    taken: (bytes) => receiveCredit.consumed(bytes),
    grant: (bytes) => body.grant(bytes),
    blocked: () => receiveCredit.blocked(),
    whenFlushed: (done) => body.whenFlushed(done),
    dispose: () => {
      body.clear();
      receiveCredit.release();
    },
  };
}
