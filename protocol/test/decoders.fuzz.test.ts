/**
 * Property tests of everything that reads bytes from the other side: random and mutated frames,
 * control messages, poll records and credit sequences. Decoders never throw (a bad input is a
 * value), the record reader never holds more than one record, and flow control only ever throws
 * its own FlowControlError and keeps what a receiver holds within a window plus one frame.
 * CTLL_FUZZ_RUNS sets the number of cases.
 */
import fc from 'fast-check';
import {
  decodeData,
  decodeFrame,
  encodeResponseHead,
  FlowControlError,
  INITIAL_WINDOW,
  MAX_CHUNK_BYTES,
  MAX_OVERSHOOT_BYTES,
  MAX_RECORD_BYTES,
  parseControl,
  parseResponseHead,
  ReceiveCredit,
  RecordReader,
  recordHeader,
  BodySender,
} from '../src';
import { binaryFrameArb, FUZZ_RUNS, mutate, pollFrameArb, streamIdArb, textFrameArb } from '../../tests/helpers/fuzz';

const ids = streamIdArb();
const params = { numRuns: FUZZ_RUNS };

describe('decoders never throw on what a peer sends', () => {
  it('decodeData answers any binary message with a value, and a valid frame keeps its id and payload', () => {
    fc.assert(
      fc.property(binaryFrameArb(ids, 2000), (frame) => {
        const result = decodeData(frame);
        if (result.ok) {
          expect(result.value.id).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
          expect(result.value.payload.byteLength).toBe(frame.byteLength - 2 - result.value.id.length);
        } else {
          expect(typeof result.error).toBe('string');
        }
      }),
      params,
    );
  });

  it('parseControl answers any text message with a value', () => {
    fc.assert(
      fc.property(textFrameArb(ids), (text) => {
        const result = parseControl(text);
        expect(typeof result.ok).toBe('boolean');
        if (result.ok && result.value.type === 'window') expect(result.value.bytes).toBeGreaterThan(0);
      }),
      params,
    );
  });

  it('decodeFrame answers any poll frame with a value', () => {
    fc.assert(
      fc.property(pollFrameArb(ids), (frame) => {
        expect(typeof decodeFrame(frame).ok).toBe('boolean');
      }),
      params,
    );
  });

  it('parseResponseHead answers any head record with a value', () => {
    const head = encodeResponseHead({ status: 200, headers: { 'content-type': 'text/plain' } }).subarray(4);
    fc.assert(
      fc.property(fc.oneof(mutate(head), fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b))), (record) => {
        expect(typeof parseResponseHead(record).ok).toBe('boolean');
      }),
      params,
    );
  });

  it('RecordReader never throws and never holds more than one unfinished record, however the bytes are split', () => {
    const recordArb = fc.oneof(
      pollFrameArb(ids).map((frame) => Buffer.concat([recordHeader(frame.byteLength), frame])),
      fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((length) => recordHeader(length)),
      fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }), (records, cuts) => {
        const stream = Buffer.concat(records);
        const reader = new RecordReader();
        let offset = 0;
        let turn = 0;
        while (offset < stream.byteLength) {
          const size = cuts[turn++ % cuts.length];
          const result = reader.push(stream.subarray(offset, offset + size));
          offset += size;
          if (!result.ok) return; // a record too long: the stream is refused, nothing more is read
          for (const record of result.value) expect(record.byteLength).toBeLessThanOrEqual(MAX_RECORD_BYTES);
          expect(reader.buffered).toBeLessThanOrEqual(4 + MAX_RECORD_BYTES);
        }
      }),
      params,
    );
  });
});

describe('flow control under any sequence of frames and grants', () => {
  type Step = { kind: 'data'; bytes: number } | { kind: 'consume' } | { kind: 'grant'; bytes: number };
  const stepArb: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ kind: fc.constant('data' as const), bytes: fc.integer({ min: 0, max: MAX_CHUNK_BYTES }) }),
    fc.record({ kind: fc.constant('consume' as const) }),
    fc.record({ kind: fc.constant('grant' as const), bytes: fc.oneof(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 1, max: MAX_CHUNK_BYTES })) }),
  );

  it('a receiver holds at most a window plus one frame, and throws only FlowControlError', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 200 }), (steps) => {
        const receive = new ReceiveCredit(() => undefined);
        let unconsumed = 0;
        for (const step of steps) {
          try {
            if (step.kind === 'data') {
              receive.received(step.bytes);
              unconsumed += step.bytes;
            } else if (step.kind === 'consume') {
              receive.consumed(unconsumed);
              unconsumed = 0;
            }
          } catch (error) {
            expect(error).toBeInstanceOf(FlowControlError);
            return;
          }
          expect(receive.held).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_OVERSHOOT_BYTES);
        }
      }),
      params,
    );
  });

  it('an honest sender and receiver never trip each other, whatever the chunk sizes and the reader pace', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4 * MAX_CHUNK_BYTES }), { maxLength: 60 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }), (chunks, reads) => {
        let waiting: Buffer[] = [];
        let arrived = 0;
        const receive = new ReceiveCredit((bytes) => sender.grant(bytes));
        const sender = new BodySender((frame) => {
          receive.received(frame.byteLength);
          arrived += frame.byteLength;
          waiting.push(frame);
        });
        let turn = 0;
        const read = () => {
          const taken = waiting.reduce((n, frame) => n + frame.byteLength, 0);
          waiting = [];
          receive.consumed(taken);
        };
        for (const size of chunks) {
          sender.write(Buffer.alloc(size));
          if (reads[turn++ % reads.length]) read();
        }
        // The reader catches up: everything written arrives, in order, without a FlowControlError.
        for (let i = 0; i < 1000 && !sender.ready; i++) read();
        read();
        expect(arrived).toBe(chunks.reduce((n, size) => n + size, 0));
      }),
      params,
    );
  });

  it('a sender throws FlowControlError exactly for grants beyond what it sent, and nothing else', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 100 }), (steps) => {
        let sent = 0;
        let granted = 0;
        const sender = new BodySender((frame) => (sent += frame.byteLength));
        for (const step of steps) {
          if (step.kind === 'data') sender.write(Buffer.alloc(step.bytes));
          if (step.kind !== 'grant') continue;
          const forged = granted + step.bytes > sent;
          let threw: unknown;
          try {
            sender.grant(step.bytes);
            granted += step.bytes;
          } catch (error) {
            threw = error;
          }
          if (forged) expect(threw).toBeInstanceOf(FlowControlError);
          else expect(threw).toBeUndefined();
          // Never past the credit plus one frame.
          expect(sent - granted).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_OVERSHOOT_BYTES);
        }
      }),
      params,
    );
  });
});
