/**
 * Whole frames of the frame link (proxy-link.ts): a short request or answer —
 * its head, its whole body and its end — as ONE binary WebSocket message, where the streaming form
 * takes three (`http_request`/`http_response`, a data frame, `end`), each its own socket write and
 * its own parse on the other side. api-backend's frame link uses them towards a side whose `hello`
 * said `whole: true`; the desktop's tunnel uses them too, negotiated per connection (tunnel-whole.ts).
 *
 *   byte 0       frame kind (0x02 = whole)
 *   bytes 1..4   head length h, unsigned big-endian
 *   bytes 5..    the head: an `http_request` or `http_response` as JSON, h bytes, with `end: true`
 *   rest         the whole body, untouched (may be empty)
 *
 * Flow control stays sound because of one invariant: a whole frame's body is at most
 * MAX_INLINE_BODY_BYTES, well within INITIAL_WINDOW, and no body frame of its stream follows it
 * (its head says `end: true`). A fresh stream's sender has credit for all of it, and since nothing
 * follows, no grant is ever due for it: the inline body stays outside the credit accounting on both
 * sides (the sender spends no credit for it, the receiver counts none and grants none). A body
 * larger than the limit, or one whose length is not known when its head is ready (a chunked upload,
 * a streamed generation), goes the streaming, credit-controlled way.
 */
import { z } from 'zod';
import { INITIAL_WINDOW } from './flow';
import { httpRequestSchema, httpResponseSchema, STREAM_ID_PATTERN } from './messages';

export const FRAME_WHOLE = 0x02;

/** Largest body a whole frame carries: what small API calls send, far below one credit window. */
export const MAX_INLINE_BODY_BYTES = 16 * 1024;

/** Largest head a whole frame carries (headers are bounded by the message schemas as well). */
const MAX_HEAD_BYTES = 48 * 1024;

/** A whole frame fits one WebSocket message of the link (MAX_FRAME_BYTES) with room to spare. */
export const MAX_WHOLE_FRAME_BYTES = 5 + MAX_HEAD_BYTES + MAX_INLINE_BODY_BYTES;

if (MAX_INLINE_BODY_BYTES > INITIAL_WINDOW) throw new Error('a whole frame body must fit the first credit window');

export const wholeHeadSchema = z.discriminatedUnion('type', [
  httpRequestSchema.extend({ end: z.literal(true) }),
  httpResponseSchema.extend({ end: z.literal(true) }),
]);

export type WholeHead = z.infer<typeof wholeHeadSchema>;

export interface WholeFrame {
  head: WholeHead;
  body: Buffer;
}

/** A failed decode; `id` names the stream when the head got far enough to say it. */
export type WholeDecodeResult = { ok: true; value: WholeFrame } | { ok: false; error: string; id?: string };

/** True for a binary message of the link that is a whole frame (not a data frame). */
export function isWholeFrame(frame: Buffer): boolean {
  return frame.byteLength > 0 && frame[0] === FRAME_WHOLE;
}

/** Whether a body of `bytes` may travel inline; callers check before choosing the whole form. */
export function fitsInline(bytes: number): boolean {
  return Number.isSafeInteger(bytes) && bytes >= 0 && bytes <= MAX_INLINE_BODY_BYTES;
}

/**
 * How long a short answer may trickle in while held for a whole frame: past this, its next chunk
 * releases it to stream, so the next hop hears from a slow short answer (and its own silence timer
 * does not fire). Both holders (the proxy towards api-backend, the bridge towards the proxy) use it.
 */
export const HOLD_LIMIT_MS = 1000;

/**
 * The content-length an answer's head declares when it is short enough to hold for a whole frame;
 * undefined for none, a repeated one (the sender's muddle: it streams) or one past the inline limit.
 */
export function heldLength(headers: Record<string, string | string[] | undefined>): number | undefined {
  const length = headers['content-length'];
  const declared = typeof length === 'string' ? Number(length) : NaN;
  return fitsInline(declared) ? declared : undefined;
}

/** A held answer must go on streaming: more arrived than its head declared, or it came too slowly. */
export function outgrewHold(held: { bytes: number; declared: number; since: number }, now = Date.now()): boolean {
  return held.bytes > held.declared || now - held.since > HOLD_LIMIT_MS;
}

/**
 * The whole frame for `head` and `body`, or undefined when the head is too big for one (headers
 * may add up past MAX_HEAD_BYTES): the caller then sends the same request or answer the streaming way.
 */
export function encodeWhole(head: WholeHead, body: Buffer): Buffer | undefined {
  // A caller past the limit would break the credit invariant above: a bug, not a peer's fault.
  if (!fitsInline(body.byteLength)) throw new RangeError(`a whole frame body is at most ${MAX_INLINE_BODY_BYTES} bytes`);
  const json = Buffer.from(JSON.stringify(head));
  if (json.byteLength > MAX_HEAD_BYTES) return undefined;
  const frame = Buffer.allocUnsafe(5 + json.byteLength + body.byteLength);
  frame[0] = FRAME_WHOLE;
  frame.writeUInt32BE(json.byteLength, 1);
  json.copy(frame, 5);
  body.copy(frame, 5 + json.byteLength);
  return frame;
}

/** Decodes a whole frame. Never throws; the body is a view, not a copy. */
export function decodeWhole(frame: Buffer): WholeDecodeResult {
  if (frame.byteLength < 5 || frame[0] !== FRAME_WHOLE) return { ok: false, error: 'whole frame shorter than its header' };
  const headLength = frame.readUInt32BE(1);
  if (headLength > MAX_HEAD_BYTES || 5 + headLength > frame.byteLength) return { ok: false, error: 'whole frame head length out of range' };
  let raw: unknown;
  try {
    raw = JSON.parse(frame.toString('utf8', 5, 5 + headLength));
  } catch {
    return { ok: false, error: 'whole frame head is not valid JSON' };
  }
  // The id is for failures only (it names the stream that fails): read on that path, not on every frame.
  const result = wholeHeadSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    return { ok: false, error: `whole frame head: ${where}${issue?.message ?? 'invalid'}`, id: idOf(raw) };
  }
  const body = frame.subarray(5 + headLength);
  if (!fitsInline(body.byteLength)) return { ok: false, error: `whole frame body exceeds ${MAX_INLINE_BODY_BYTES} bytes`, id: idOf(raw) };
  return { ok: true, value: { head: result.data, body } };
}

/** The stream id of a head that failed validation, when it has a well-formed one. */
function idOf(raw: unknown): string | undefined {
  const result = idOnlySchema.safeParse(raw);
  return result.success ? result.data.id : undefined;
}

const idOnlySchema = z.object({ id: z.string().regex(STREAM_ID_PATTERN) });
