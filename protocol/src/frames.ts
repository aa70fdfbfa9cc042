/**
 * Binary data frames: one WebSocket binary message per body chunk.
 *
 *   byte 0      frame kind (0x01 = body data)
 *   byte 1      id length n (1..64)
 *   bytes 2..   stream id, ASCII, n bytes
 *   rest        the body bytes, untouched
 *
 * The header is a few bytes against base64-in-JSON's 33 % and a parse, and decoding is a
 * subarray view: the payload is never copied on the way in.
 */
import { STREAM_ID_PATTERN, type ParseResult } from './messages';

export const FRAME_DATA = 0x01;

/** Largest body slice per frame; bigger chunks are split so one stream cannot hog the socket. */
export const MAX_CHUNK_BYTES = 64 * 1024;
/** Largest WebSocket message either side accepts: a full chunk plus its header, with room to spare. */
export const MAX_FRAME_BYTES = MAX_CHUNK_BYTES + 1024;

export interface DataFrame {
  id: string;
  payload: Buffer;
}

export function encodeData(id: string, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(dataHeaderBytes(id) + payload.byteLength);
  frame.set(payload, writeDataHeader(frame, 0, id));
  return frame;
}

/** How many bytes a data frame's header takes for stream `id` (its kind, id length and id). */
export function dataHeaderBytes(id: string): number {
  return 2 + Buffer.byteLength(id, 'latin1');
}

/** Writes a data frame's header at `offset` of `target`; returns where its payload begins. */
export function writeDataHeader(target: Buffer, offset: number, id: string): number {
  const idLength = Buffer.byteLength(id, 'latin1');
  target[offset] = FRAME_DATA;
  target[offset + 1] = idLength;
  target.write(id, offset + 2, 'latin1');
  return offset + 2 + idLength;
}

/** Splits a chunk of any size into views of at most MAX_CHUNK_BYTES (no copy). */
export function* chunkSlices(chunk: Buffer): Generator<Buffer> {
  if (chunk.byteLength <= MAX_CHUNK_BYTES) {
    yield chunk;
    return;
  }
  for (let offset = 0; offset < chunk.byteLength; offset += MAX_CHUNK_BYTES) {
    yield chunk.subarray(offset, offset + MAX_CHUNK_BYTES);
  }
}

/**
 * The bytes of a chunk that is about to wait (for credit, or for a slow reader) in a buffer of
 * their own. Decoding hands out views (`decodeData`, and the WebSocket library's own messages are
 * views of socket reads), and a view keeps its whole parent alive: a window's worth of views
 * waiting for a stalled caller can hold far more than a window. A chunk that already has (nearly)
 * its parent to itself is returned as it is, so this is idempotent and a chunk that goes straight
 * on is never copied.
 */
export function detached(chunk: Buffer): Buffer {
  // Up to 1/16 of slack is tolerated: the same share the protocol allows one frame over a window.
  if (chunk.buffer.byteLength - chunk.byteLength <= chunk.byteLength / 16) return chunk;
  const own = Buffer.allocUnsafeSlow(chunk.byteLength);
  chunk.copy(own);
  return own;
}

/** Decodes a binary frame. Never throws. */
export function decodeData(frame: Buffer): ParseResult<DataFrame> {
  if (frame.byteLength < 3) return { ok: false, error: 'binary frame shorter than its header' };
  if (frame[0] !== FRAME_DATA) return { ok: false, error: `unknown binary frame kind 0x${frame[0].toString(16)}` };
  const idLength = frame[1];
  if (idLength < 1 || idLength > 64 || frame.byteLength < 2 + idLength) {
    return { ok: false, error: 'binary frame id length out of range' };
  }
  const id = frame.toString('latin1', 2, 2 + idLength);
  if (!STREAM_ID_PATTERN.test(id)) return { ok: false, error: 'binary frame id has invalid characters' };
  return { ok: true, value: { id, payload: frame.subarray(2 + idLength) } };
}
