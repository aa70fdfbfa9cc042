import { randomBytes } from 'node:crypto';
import { chunkSlices, decodeData, encodeData, MAX_CHUNK_BYTES } from '../src';

describe('data frames', () => {
  it('carry any bytes unchanged, including every byte value', () => {
    const payload = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const decoded = decodeData(encodeData('t1.z9', payload));
    expect(decoded.ok && decoded.value.id).toBe('t1.z9');
    expect(decoded.ok && Buffer.compare(decoded.value.payload, payload)).toBe(0);
  });

  it('decode without copying the payload', () => {
    const frame = encodeData('a', randomBytes(1000));
    const decoded = decodeData(frame);
    expect(decoded.ok && decoded.value.payload.buffer).toBe(frame.buffer);
  });

  it('allow an empty payload', () => {
    const decoded = decodeData(encodeData('a', Buffer.alloc(0)));
    expect(decoded.ok && decoded.value.payload.byteLength).toBe(0);
  });

  it.each([
    ['too short', Buffer.from([1, 1])],
    ['unknown kind', Buffer.from([9, 1, 97, 0])],
    ['zero id length', Buffer.from([1, 0, 97])],
    ['id longer than the frame', Buffer.from([1, 50, 97])],
    ['id with invalid characters', Buffer.from([1, 1, 0x20, 1])],
  ])('reject a frame with %s', (_name, frame) => {
    expect(decodeData(frame).ok).toBe(false);
  });

  it('split large chunks into slices that together are the chunk', () => {
    const chunk = randomBytes(MAX_CHUNK_BYTES * 2 + 123);
    const slices = [...chunkSlices(chunk)];
    expect(slices.map((s) => s.byteLength)).toEqual([MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, 123]);
    expect(Buffer.compare(Buffer.concat(slices), chunk)).toBe(0);
  });
});
