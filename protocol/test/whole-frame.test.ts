/**
 * Whole frames of the frame link (whole-frame.ts): what a peer gets back from encode and decode,
 * and what it gets for bytes no honest peer sends. Decoding never throws.
 */
import fc from 'fast-check';
import { decodeWhole, encodeWhole, FRAME_WHOLE, INITIAL_WINDOW, MAX_FRAME_BYTES, MAX_INLINE_BODY_BYTES, MAX_WHOLE_FRAME_BYTES, type WholeHead } from '../src';
import { FUZZ_RUNS, mutate } from '../../tests/helpers/fuzz';

const request: WholeHead = { type: 'http_request', id: 'a1', method: 'POST', path: '/api/show', headers: { 'content-type': 'application/json' }, end: true };

/** A whole frame written by hand, to carry what encodeWhole refuses to write. */
function handMade(head: unknown, body: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(head));
  const prefix = Buffer.alloc(5);
  prefix[0] = FRAME_WHOLE;
  prefix.writeUInt32BE(json.byteLength, 1);
  return Buffer.concat([prefix, json, body]);
}

it('keeps within flow control and the link: the inline body fits the first window, a whole frame fits one message', () => {
  expect(MAX_INLINE_BODY_BYTES).toBeLessThanOrEqual(INITIAL_WINDOW);
  expect(MAX_WHOLE_FRAME_BYTES).toBeLessThanOrEqual(MAX_FRAME_BYTES);
});

it('gives back the head and the body it was given, byte for byte', () => {
  const body = Buffer.from([0, 1, 2, 255, 254]);
  const decoded = decodeWhole(encodeWhole(request, body)!);
  expect(decoded).toEqual({ ok: true, value: { head: request, body } });
});

it('writes no whole frame for a head too big for one message: the caller streams it instead', () => {
  const headers = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`x-big-${i}`, 'v'.repeat(8000)]));
  expect(encodeWhole({ ...request, headers }, Buffer.alloc(10))).toBeUndefined();
});

it('refuses a body past the inline limit, naming the stream so only it fails', () => {
  const decoded = decodeWhole(handMade(request, Buffer.alloc(MAX_INLINE_BODY_BYTES + 1)));
  expect(decoded).toEqual({ ok: false, error: `whole frame body exceeds ${MAX_INLINE_BODY_BYTES} bytes`, id: 'a1' });
});

it('refuses a head that says more body follows (end: false): a whole frame is the whole stream', () => {
  const decoded = decodeWhole(handMade({ ...request, end: false }, Buffer.alloc(0)));
  expect(decoded).toMatchObject({ ok: false, id: 'a1', error: expect.stringContaining('end') });
});

it('refuses a head that is no request or answer, a truncated frame and a head that is not JSON, without a stream id', () => {
  expect(decodeWhole(handMade({ type: 'end', id: 'a1' }, Buffer.alloc(0)))).toMatchObject({ ok: false, id: 'a1' });
  expect(decodeWhole(Buffer.from([FRAME_WHOLE, 0, 0]))).toEqual({ ok: false, error: 'whole frame shorter than its header' });
  expect(decodeWhole(Buffer.from([FRAME_WHOLE, 0, 0, 0, 9, 0x7b]))).toEqual({ ok: false, error: 'whole frame head length out of range' });
  expect(decodeWhole(Buffer.from([FRAME_WHOLE, 0, 0, 0, 1, 0x7b]))).toEqual({ ok: false, error: 'whole frame head is not valid JSON' });
});

it('answers any mutation of a valid whole frame with a value, never a throw', () => {
  const valid = encodeWhole(request, Buffer.from('{"prompt":"hi"}'))!;
  fc.assert(
    fc.property(mutate(valid), (frame) => {
      const result = decodeWhole(frame);
      expect(typeof result.ok).toBe('boolean');
    }),
    { numRuns: FUZZ_RUNS },
  );
});
