/**
 * One answer to a poll, read as it arrives: a batch of records (the WebSocket's frames, each
 * behind a length), every frame validated here and only here, then handed to the stream table.
 *
 * Flow control is checked per answer: the relay returns a stream's credit only when a poll carries
 * its bytes away, so one answer never holds more than a window plus one frame of any stream's
 * body (the window the registration agreed, protocol/src/stream-window.ts). An answer holding more
 * breaks the protocol and ends the connection. A record that cannot
 * be framed ends only this answer (its streams fail at the relay by timeout); a malformed frame in
 * a good record is refused on its own, naming its stream when it can.
 */
import type http from 'node:http';
import { decodeFrame, FLOW_CONTROL_CLOSE_REASON, MAX_OVERSHOOT_BYTES, RecordReader } from '@ctll/protocol';
import type { StreamTable } from './stream-table';

/** What the poll connection lends a batch while it is read. */
export interface BatchSink {
  readonly streams: StreamTable;
  /** Whether this bridge offered whole frames: a whole record is refused otherwise. */
  readonly wholeFrames: boolean;
  /** The most of one stream's body an answer may hold (INITIAL_WINDOW unless the registration agreed more). */
  window(): number;
  /** True once the connection has ended: the rest of the answer is ignored. */
  ended(): boolean;
  /** Whether a local request is open for this stream (its body bytes then count as untaken). */
  hasPort(id: string): boolean;
  /** Body bytes handed to local requests and not yet taken by them. */
  addUntaken(bytes: number): void;
  rejectFrame(reason: string, id?: string): void;
  notice(message: string): void;
  fail(reason: string): void;
}

/** Reads `res` to its end, then calls `answered` (also after a broken batch: the poll loop goes on). */
export function readBatch(res: http.IncomingMessage, sink: BatchSink, answered: () => void): void {
  const reader = new RecordReader();
  /** Body bytes per stream in this answer: more than a window plus one frame breaks flow control. */
  const perStream = new Map<string, number>();
  let broken = false;
  res.on('data', (chunk: Buffer) => {
    if (broken || sink.ended()) return;
    const records = reader.push(chunk);
    if (!records.ok) {
      broken = true;
      sink.rejectFrame(records.error);
      return;
    }
    for (const record of records.value) {
      if (!dispatch(record, perStream, sink)) {
        broken = true;
        res.destroy();
        return;
      }
    }
  });
  res.on('end', () => {
    if (!broken && reader.buffered > 0) sink.rejectFrame('a poll answer ended inside a record');
    answered();
  });
}

/** One frame of a poll answer; false ends the connection. */
function dispatch(record: Buffer, perStream: Map<string, number>, sink: BatchSink): boolean {
  const frame = decodeFrame(record);
  if (!frame.ok) {
    sink.rejectFrame(frame.error, frame.id);
    return true;
  }
  try {
    if (frame.value.kind === 'whole') {
      if (!sink.wholeFrames) {
        sink.rejectFrame('a whole frame, which this bridge did not offer');
        return true;
      }
      const { head, body } = frame.value.whole;
      const fresh = !sink.hasPort(head.id);
      // Within the inline limit, far below a window: no flow-control check to make (tunnel-whole.ts).
      sink.streams.handleWhole(frame.value.whole);
      // Untaken as a data record's bytes are once their stream is open; bodyTaken gives them back.
      if (fresh && sink.hasPort(head.id)) sink.addUntaken(body.byteLength);
      return true;
    }
    if (frame.value.kind === 'data') {
      const { id, payload } = frame.value.data;
      const inBatch = (perStream.get(id) ?? 0) + payload.byteLength;
      if (inBatch > sink.window() + MAX_OVERSHOOT_BYTES) {
        sink.fail(`the relay broke flow control (${FLOW_CONTROL_CLOSE_REASON}: ${inBatch} bytes of ${id} in one poll answer)`);
        return false;
      }
      perStream.set(id, inBatch);
      if (sink.hasPort(id)) sink.addUntaken(payload.byteLength);
      sink.streams.handleData(id, payload);
      return true;
    }
    const message = frame.value.message;
    if (message.type === 'error' && message.id === undefined) {
      sink.notice(`the relay reported ${message.code}: ${message.message}`);
    }
    sink.streams.handleControl(message);
  } catch (error) {
    // A fault of ours in one message must not take down the tunnel and every stream on it.
    sink.notice(`internal error while handling a relay message: ${(error as Error).message}`);
  }
  return true;
}
