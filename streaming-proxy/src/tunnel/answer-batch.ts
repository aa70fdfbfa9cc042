/**
 * A polling bridge's batch of short answers (protocol/src/poll.ts, `answers/<bridgeId>`): records of
 * whole frames, read whole (at most MAX_BATCHED_ANSWERS of at most MAX_WHOLE_FRAME_BYTES each) and
 * handed one by one to their streams as head, body and end. Each answer stands alone: one for a
 * request no longer waiting (its web client left, it timed out) is refused in the 200 answer and
 * the others are taken; one that is malformed fails its own stream with `bad_message` when its
 * head names one. A body that is not a batch at all (framing broken, too many or too large, from a
 * bridge that never offered batches) is answered 400 and what it held is not taken.
 */
import {
  decodeWhole,
  MAX_ANSWER_BATCH_BYTES,
  MAX_BATCHED_ANSWERS,
  RecordReader,
  TunnelErrorCode,
  type AnswerBatchResult,
} from '@ctll/protocol';
import type { BridgeRequest, BridgeResponse } from '../http/bridge-exchange';
import { sendError, sendJson } from '../http/respond';
import type { Correlator, StreamSender } from './correlator';

export interface AnswerBatchHost {
  /** The bridge registered offering batches (and whole frames). */
  offered: boolean;
  /** The bridge was heard from (its link stays alive). */
  seen(): void;
  /** Whether the request still waits for an answer and none is being read for it already. */
  awaits(requestId: string): boolean;
  correlator: Correlator;
  reply: StreamSender;
}

export function takeAnswerBatch(req: BridgeRequest, res: BridgeResponse, host: AnswerBatchHost): void {
  if (!host.offered) {
    req.resume();
    return sendError(res, 'malformed_answer', 'a batch of answers from a bridge that did not register for them');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk: Buffer) => {
    host.seen();
    if (refused) return;
    size += chunk.byteLength;
    if (size > MAX_ANSWER_BATCH_BYTES) {
      refused = true;
      return sendError(res, 'malformed_answer', `a batch of answers is at most ${MAX_ANSWER_BATCH_BYTES} bytes`);
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (refused) return;
    const records = new RecordReader().push(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    if (!records.ok) return sendError(res, 'malformed_answer', records.error);
    if (records.value.length > MAX_BATCHED_ANSWERS) return sendError(res, 'malformed_answer', `a batch holds at most ${MAX_BATCHED_ANSWERS} answers`);
    const result: AnswerBatchResult = { refused: [] };
    for (const record of records.value) {
      const frame = decodeWhole(record);
      if (!frame.ok || frame.value.head.type !== 'http_response') {
        const id = frame.ok ? frame.value.head.id : frame.id;
        const reason = frame.ok ? 'an answer in a batch must be an http_response' : frame.error;
        if (id !== undefined && host.awaits(id)) {
          host.correlator.handleControl({ type: 'error', id, code: TunnelErrorCode.BadMessage, message: `the desktop sent a malformed answer: ${reason}` }, host.reply);
        }
        result.refused.push({ id: id ?? '', code: 'malformed_answer', message: reason });
        continue;
      }
      const { id } = frame.value.head;
      if (!host.awaits(id)) {
        result.refused.push({ id, code: 'unknown_request', message: `no request ${id} is waiting for an answer` });
        continue;
      }
      host.correlator.handleWhole(frame.value, host.reply);
    }
    sendJson(res, 200, result);
  });
}
