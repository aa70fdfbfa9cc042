/**
 * A polling bridge's short answer POSTed as one whole frame (POLL_WHOLE_CONTENT_TYPE,
 * tunnel-whole.ts): read whole (it is at most MAX_WHOLE_FRAME_BYTES), decoded once, and handed to
 * the stream as the head, body and end it stands for. Anything else — a bridge that never
 * registered for whole frames, a frame past the limit, a head for another stream or a request — is
 * answered 400 and fails this one stream with `bad_message` at once; other streams go on.
 */
import { decodeWhole, MAX_WHOLE_FRAME_BYTES, TunnelErrorCode } from '@ctll/protocol';
import { sendError, sendJson } from '../http/respond';
import type { Correlator, StreamSender } from './correlator';
import type { BridgeRequest, BridgeResponse } from '../http/bridge-exchange';

export interface WholeAnswerHost {
  /** The bridge registered with `whole: true`. */
  offered: boolean;
  /** The bridge was heard from (its link stays alive). */
  seen(): void;
  /** The POST is over, however it ended: a later one for the same stream is unknown. */
  settled(): void;
  correlator: Correlator;
  reply: StreamSender;
}

export function respondWhole(requestId: string, req: BridgeRequest, res: BridgeResponse, host: WholeAnswerHost): void {
  let finished = false;
  const refuse = (reason: string) => {
    finished = true;
    host.settled();
    req.resume();
    sendError(res, 'malformed_answer', reason);
    const message = `the desktop sent a malformed answer: ${reason}`;
    host.correlator.handleControl({ type: 'error', id: requestId, code: TunnelErrorCode.BadMessage, message }, host.reply);
  };
  if (!host.offered) return refuse('a whole answer from a bridge that did not register for whole frames');
  const tooLarge = `a whole answer is at most ${MAX_WHOLE_FRAME_BYTES} bytes; a longer one streams`;
  if (Number(req.headers['content-length']) > MAX_WHOLE_FRAME_BYTES) return refuse(tooLarge);
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    host.seen();
    if (finished) return;
    size += chunk.byteLength;
    if (size > MAX_WHOLE_FRAME_BYTES) return refuse(tooLarge);
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (finished) return;
    const frame = decodeWhole(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    if (!frame.ok) return refuse(frame.error);
    const { head } = frame.value;
    if (head.type !== 'http_response' || head.id !== requestId) return refuse(`a whole answer to ${requestId} must be its http_response`);
    finished = true;
    host.settled();
    host.correlator.handleWhole(frame.value, host.reply);
    sendJson(res, 200, { ok: true });
  });
  req.on('close', () => {
    if (finished) return;
    finished = true;
    host.settled();
    host.correlator.handleControl({ type: 'error', id: requestId, code: TunnelErrorCode.TargetFailed, message: 'the desktop stopped sending its answer' }, host.reply);
  });
}
