/**
 * The poll transport's record reader gives back exactly the records that were written, however
 * the socket cut them, and a record that arrived within one read is that read's memory, not a copy.
 */
import fc from 'fast-check';
import { dataRecordHead, decodeFrame, MAX_RECORD_BYTES, RecordReader, recordHeader } from '../src';
import { FUZZ_RUNS } from '../../tests/helpers/fuzz';

function recordOf(payload: Buffer): Buffer {
  return Buffer.concat([recordHeader(payload.byteLength), payload]);
}

/** Feeds `stream` to a reader in pieces of the given sizes (cycled) and collects every record. */
function readAll(stream: Buffer, cuts: number[]): Buffer[] {
  const reader = new RecordReader();
  const out: Buffer[] = [];
  for (let offset = 0, turn = 0; offset < stream.byteLength; turn++) {
    const size = cuts[turn % cuts.length];
    const result = reader.push(stream.subarray(offset, offset + size));
    if (!result.ok) throw new Error(result.error);
    out.push(...result.value.map((record) => Buffer.from(record)));
    offset += size;
  }
  expect(reader.buffered).toBe(0);
  return out;
}

describe('RecordReader', () => {
  it('returns every record byte for byte, whatever the cuts between reads (a length field split too)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 6 }),
        (payloads, cuts) => {
          const records = payloads.map((p) => Buffer.from(p));
          const read = readAll(Buffer.concat(records.map(recordOf)), cuts);
          expect(read.map((r) => r.toString('hex'))).toEqual(records.map((r) => r.toString('hex')));
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('reassembles a 64 KiB body record that arrives in 1,000-byte reads, and keeps the next record apart', () => {
    const big = Buffer.alloc(64 * 1024, 7);
    big.writeUInt32BE(0xdeadbeef, 100);
    const small = Buffer.from('after');
    const read = readAll(Buffer.concat([recordOf(big), recordOf(small)]), [1000]);
    expect(read).toHaveLength(2);
    expect(read[0].equals(big)).toBe(true);
    expect(read[1].toString()).toBe('after');
  });

  it('hands out a record that lay within one read as a view of that read', () => {
    const chunk = Buffer.concat([recordOf(Buffer.from('one')), recordOf(Buffer.from('two'))]);
    const result = new RecordReader().push(chunk);
    if (!result.ok) throw new Error(result.error);
    expect(result.value.map(String)).toEqual(['one', 'two']);
    for (const record of result.value) expect(record.buffer).toBe(chunk.buffer);
  });

  it('stops after `limit` records and gives the rest back untouched', () => {
    const reader = new RecordReader();
    const rest = Buffer.from('raw body bytes');
    const result = reader.push(Buffer.concat([recordOf(Buffer.from('{"status":200}')), rest.subarray(0, 4)]), 1);
    if (!result.ok) throw new Error(result.error);
    expect(result.value.map(String)).toEqual(['{"status":200}']);
    reader.push(rest.subarray(4), 0);
    expect(reader.takeRest().toString()).toBe('raw body bytes');
    expect(reader.buffered).toBe(0);
  });

  it('refuses a record longer than the limit as soon as its length field is complete', () => {
    const reader = new RecordReader();
    const header = recordHeader(MAX_RECORD_BYTES + 1);
    expect(reader.push(header.subarray(0, 3))).toEqual({ ok: true, value: [] });
    const result = reader.push(header.subarray(3));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(/exceeds/);
  });

  it('reads back a data record written as its head and then its payload as the same stream id and payload', () => {
    const payload = Buffer.from('a chunk of a request body');
    const result = new RecordReader().push(Buffer.concat([dataRecordHead('s-17', payload.byteLength), payload]));
    if (!result.ok) throw new Error(result.error);
    expect(result.value).toHaveLength(1);
    const frame = decodeFrame(result.value[0]);
    if (!frame.ok || frame.value.kind !== 'data') throw new Error('not a data frame');
    expect(frame.value.data.id).toBe('s-17');
    expect(frame.value.data.payload.equals(payload)).toBe(true);
  });
});
