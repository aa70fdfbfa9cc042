/**
 * Framing for the HTTP long-poll transport, for desktops whose network blocks WebSockets.
 *
 * A poll answer carries a batch of the same frames the WebSocket carries, each as a record:
 *
 *   u32 big-endian length n, then n bytes of frame
 *   frame = 0x00 + UTF-8 JSON control message     (what a WebSocket text message holds)
 *         | 0x01 + id length + id + body bytes      (a data frame, exactly as in frames.ts)
 *         | 0x02 + head length + head + body       (a whole frame, whole-frame.ts; only to a bridge
 *                                                  that registered with `whole: true`)
 *
 * The desktop's answer to one request is one streamed POST: a record holding the JSON response
 * head (`{status, headers}` or `{error: {code, message}}`), then the raw body bytes until the
 * request ends. No base64 anywhere, and the body streams as the local server produces it. A bridge
 * the relay said takes whole frames may instead POST a short answer as one whole frame
 * (POLL_WHOLE_CONTENT_TYPE, tunnel-whole.ts).
 *
 * Short answers ready at the same moment may go together: `POST /api/bridge/answers/<bridgeId>`
 * whose body is records of whole frames, one per answer, each an `http_response` with `end: true`
 * (at most MAX_BATCHED_ANSWERS). The relay takes each on its own and says which it refused (the
 * web client left, the stream timed out). A bridge sends such batches only to a relay whose
 * registration answer said `answers: true`, and a relay says so only to a bridge that offered it.
 */
import { z } from 'zod';
import { dataHeaderBytes, decodeData, FRAME_DATA, writeDataHeader, type DataFrame } from './frames';
import { encodeControl, parseControl, wireHeadersSchema, type ControlMessage, type ParseResult } from './messages';
import { decodeWhole, FRAME_WHOLE, MAX_WHOLE_FRAME_BYTES, type WholeFrame } from './whole-frame';
import { declaredWindowSchema } from './stream-window';

export const FRAME_CONTROL = 0x00;
export const POLL_BATCH_CONTENT_TYPE = 'application/vnd.ctll.frames';
export const POLL_RESPONSE_CONTENT_TYPE = 'application/vnd.ctll.response';
/** A record longer than this is refused: frames are at most one chunk plus a header. */
export const MAX_RECORD_BYTES = 1024 * 1024;

export function controlFrame(message: ControlMessage): Buffer {
  const json = encodeControl(message);
  const frame = Buffer.allocUnsafe(1 + Buffer.byteLength(json));
  frame[0] = FRAME_CONTROL;
  frame.write(json, 1, 'utf8');
  return frame;
}

export function recordHeader(frameLength: number): Buffer {
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(frameLength, 0);
  return header;
}

/**
 * The bytes of a data frame's poll record that come before its payload (the record's length, the
 * frame kind, the stream id), so a sender can write the payload behind them without copying it
 * into a frame first.
 */
export function dataRecordHead(id: string, payloadBytes: number): Buffer {
  const frameHeader = dataHeaderBytes(id);
  const head = Buffer.allocUnsafe(4 + frameHeader);
  head.writeUInt32BE(frameHeader + payloadBytes, 0);
  writeDataHeader(head, 4, id);
  return head;
}

export type Frame = { kind: 'control'; message: ControlMessage } | { kind: 'data'; data: DataFrame } | { kind: 'whole'; whole: WholeFrame };

/** A failed decode; `id` names the stream when a whole frame's head got far enough to say it. */
export type FrameDecodeResult = { ok: true; value: Frame } | { ok: false; error: string; id?: string };

export function decodeFrame(frame: Buffer): FrameDecodeResult {
  if (frame.byteLength === 0) return { ok: false, error: 'empty frame' };
  if (frame[0] === FRAME_CONTROL) {
    const parsed = parseControl(frame.toString('utf8', 1));
    return parsed.ok ? { ok: true, value: { kind: 'control', message: parsed.value } } : parsed;
  }
  if (frame[0] === FRAME_DATA) {
    const parsed = decodeData(frame);
    return parsed.ok ? { ok: true, value: { kind: 'data', data: parsed.value } } : parsed;
  }
  if (frame[0] === FRAME_WHOLE) {
    const parsed = decodeWhole(frame);
    return parsed.ok ? { ok: true, value: { kind: 'whole', whole: parsed.value } } : parsed;
  }
  return { ok: false, error: `unknown frame kind 0x${frame[0].toString(16)}` };
}

/**
 * Splits a byte stream into records as chunks arrive. `push` returns the complete records so far;
 * a record longer than MAX_RECORD_BYTES is an error (the stream is not ours).
 *
 * A record is assembled once, when its last byte has arrived: a body record of 64 KiB comes in
 * several socket reads, and joining what has arrived on every read copied it again and again (and
 * made as much garbage), the largest cost of a polling bridge's upload after its socket writes.
 * A record that lies within one chunk is a view of it, not a copy.
 */
export class RecordReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The length of the record whose header has been read, header included. */
  private needed: number | undefined;

  /** `limit` stops after that many records, leaving the rest for `takeRest` (a head before a raw body). */
  push(chunk: Buffer, limit = Infinity): ParseResult<Buffer[]> {
    if (chunk.byteLength > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.byteLength;
    }
    const records: Buffer[] = [];
    while (records.length < limit) {
      if (this.needed === undefined) {
        if (this.pendingBytes < 4) break;
        const length = this.peekLength();
        if (length > MAX_RECORD_BYTES) return { ok: false, error: `record of ${length} bytes exceeds ${MAX_RECORD_BYTES}` };
        this.needed = 4 + length;
      }
      if (this.pendingBytes < this.needed) break;
      records.push(this.take(this.needed).subarray(4));
      this.needed = undefined;
    }
    return { ok: true, value: records };
  }

  /** Bytes after the last complete record (for a head record followed by a raw body). */
  takeRest(): Buffer {
    const rest = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.needed = undefined;
    return rest;
  }

  get buffered(): number {
    return this.pendingBytes;
  }

  /** The length field of the record at the front, which may itself straddle chunks. */
  private peekLength(): number {
    const first = this.pending[0];
    if (first.byteLength >= 4) return first.readUInt32BE(0);
    const joined = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [joined];
    return joined.readUInt32BE(0);
  }

  /** The first `bytes` pending bytes: a view when one chunk holds them, else one copy. */
  private take(bytes: number): Buffer {
    const first = this.pending[0];
    let out: Buffer;
    if (first.byteLength >= bytes) {
      out = first.subarray(0, bytes);
      if (first.byteLength === bytes) this.pending.shift();
      else this.pending[0] = first.subarray(bytes);
    } else {
      out = Buffer.allocUnsafe(bytes);
      let filled = 0;
      while (filled < bytes) {
        const chunk = this.pending[0];
        const part = Math.min(chunk.byteLength, bytes - filled);
        chunk.copy(out, filled, 0, part);
        filled += part;
        if (part === chunk.byteLength) this.pending.shift();
        else this.pending[0] = chunk.subarray(part);
      }
    }
    this.pendingBytes -= bytes;
    return out;
  }
}

export const responseHeadSchema = z.union([
  z.object({ status: z.number().int().min(100).max(599), headers: wireHeadersSchema }),
  z.object({ error: z.object({ code: z.string().min(1).max(64), message: z.string().max(2048) }) }),
]);
export type ResponseHead = z.infer<typeof responseHeadSchema>;

export function encodeResponseHead(head: ResponseHead): Buffer {
  const json = Buffer.from(JSON.stringify(head), 'utf8');
  return Buffer.concat([recordHeader(json.byteLength), json]);
}

export function parseResponseHead(record: Buffer): ParseResult<ResponseHead> {
  let raw: unknown;
  try {
    raw = JSON.parse(record.toString('utf8'));
  } catch {
    return { ok: false, error: 'response head is not valid JSON' };
  }
  const result = responseHeadSchema.safeParse(raw);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, error: `response head: ${result.error.issues[0]?.message ?? 'invalid'}` };
}

const positive = z.number().finite().positive();

/** What `POST /api/bridge/register` answers: the bridge's id and the timings it must keep. */
export const pollRegistrationSchema = z.object({
  bridgeId: z.string().regex(/^[A-Za-z0-9]{1,64}$/),
  pollTimeoutMs: positive,
  heartbeatIntervalMs: positive,
  graceMs: positive,
  maxQueuedRequests: positive,
  /** The relay takes whole frames from this bridge and sends it some (tunnel-whole.ts); absent from older relays. */
  whole: z.boolean().optional(),
  /** The relay takes batches of short answers (`answers/<bridgeId>`); absent from older relays. */
  answers: z.boolean().optional(),
  /**
   * The most of one stream's body a poll answer may carry (stream-window.ts), when the bridge
   * offered growing windows; absent from older relays (then INITIAL_WINDOW, fixed).
   */
  window: declaredWindowSchema.optional(),
});
export type PollRegistration = z.infer<typeof pollRegistrationSchema>;

export const registerBodySchema = z.object({
  clientId: z.string().min(1).max(128).optional(),
  platform: z.string().min(1).max(64).optional(),
  version: z.string().min(1).max(64).optional(),
  /** The bridge takes whole frames (tunnel-whole.ts); absent from older bridges. */
  whole: z.boolean().optional(),
  /** The bridge would send batches of short answers; absent from older bridges. */
  answers: z.boolean().optional(),
  /** The bridge takes poll answers holding up to this much of one stream's body (stream-window.ts); absent from older bridges. */
  window: declaredWindowSchema.optional(),
});

/** The most answers one batch holds. */
export const MAX_BATCHED_ANSWERS = 32;

/** A full batch's body: every answer at its largest, behind its 4-byte record length (about 2 MiB). */
export const MAX_ANSWER_BATCH_BYTES = MAX_BATCHED_ANSWERS * (4 + MAX_WHOLE_FRAME_BYTES);

/** What the relay answers to a batch of answers: the ones it did not take, and why. */
export const answerBatchResultSchema = z.object({
  refused: z.array(z.object({ id: z.string().max(64), code: z.string().min(1).max(64), message: z.string().max(2048) })).max(MAX_BATCHED_ANSWERS),
});
export type AnswerBatchResult = z.infer<typeof answerBatchResultSchema>;

/** Desktop → relay control messages that do not belong to a response (cancel, errors), sent with a heartbeat. */
export const heartbeatBodySchema = z.object({ messages: z.array(z.unknown()).max(256).optional() });

