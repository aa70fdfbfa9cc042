/**
 * Shared pieces of the property tests: how many cases to run (CTLL_FUZZ_RUNS, a few thousand by
 * default) and fast-check arbitraries for the tunnel protocol's frames, valid and mutated.
 */
import fc from 'fast-check';
import { controlFrame, encodeControl, encodeData, type ControlMessage } from '@ctll/protocol';

/** Cases per property; CTLL_FUZZ_RUNS=100000 for a long soak. */
export const FUZZ_RUNS = Number(process.env.CTLL_FUZZ_RUNS ?? '') || 2000;

/** Fewer cases for properties that each open sockets. */
export const FUZZ_SOCKET_RUNS = Math.max(50, Math.floor(FUZZ_RUNS / 10));

export const streamIdArb = (known: string[] = []) =>
  fc.oneof(
    fc.constantFrom('t0.0', 't0.1', 'x', ...known.length > 0 ? known : ['t0.2']),
    fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/),
    fc.string({ maxLength: 70 }),
  );

const headersArb = fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), fc.oneof(fc.string({ maxLength: 40 }), fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 })), { maxKeys: 5 });

/** Control messages, most of them valid in shape, with awkward numbers. */
export const controlArb = (ids: fc.Arbitrary<string>): fc.Arbitrary<ControlMessage> =>
  fc.oneof(
    fc.record({ type: fc.constant('http_response' as const), id: ids, status: fc.integer({ min: 100, max: 599 }), headers: headersArb, end: fc.boolean() }),
    fc.record({ type: fc.constant('http_request' as const), id: ids, method: fc.constantFrom('GET', 'POST'), path: fc.constant('/x'), headers: headersArb, end: fc.boolean() }),
    fc.record({ type: fc.constant('end' as const), id: ids }),
    fc.record({ type: fc.constant('cancel' as const), id: ids, reason: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }) }),
    fc.record({ type: fc.constant('window' as const), id: ids, bytes: fc.oneof(fc.integer({ min: 1, max: 2 ** 31 }), fc.constantFrom(1, 65536, 2 ** 20, 2 ** 31)) }),
    fc.record({ type: fc.constant('ping' as const), ts: fc.double() }),
    fc.record({ type: fc.constant('pong' as const), ts: fc.double() }),
    fc.record({ type: fc.constant('error' as const), id: fc.option(ids, { nil: undefined }), code: fc.constantFrom('bad_message', 'target_failed', 'x'), message: fc.string({ maxLength: 40 }) }),
  ) as fc.Arbitrary<ControlMessage>;

/** Flips, cuts or extends a buffer: what a broken or hostile peer might send. */
export const mutate = (bytes: Buffer): fc.Arbitrary<Buffer> =>
  fc.oneof(
    fc.constant(bytes),
    fc.tuple(fc.nat({ max: Math.max(0, bytes.byteLength - 1) }), fc.integer({ min: 0, max: 255 })).map(([at, value]) => {
      const copy = Buffer.from(bytes);
      if (copy.byteLength > 0) copy[at] = value;
      return copy;
    }),
    fc.nat({ max: bytes.byteLength }).map((end) => bytes.subarray(0, end)),
    fc.uint8Array({ maxLength: 32 }).map((extra) => Buffer.concat([bytes, Buffer.from(extra)])),
  );

/** A text message: a control message's JSON, mutated or not, or any string at all. */
export const textFrameArb = (ids: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.oneof(
    controlArb(ids).map(encodeControl),
    controlArb(ids).chain((message) => mutate(Buffer.from(encodeControl(message))).map((b) => b.toString('utf8'))),
    fc.json(),
    fc.string({ maxLength: 200 }),
  );

/** A binary message: a data frame, mutated or not, or any bytes. */
export const binaryFrameArb = (ids: fc.Arbitrary<string>, maxPayload = 70_000): fc.Arbitrary<Buffer> =>
  fc.oneof(
    fc.tuple(ids.filter((id) => Buffer.byteLength(id, 'latin1') <= 255), fc.nat({ max: maxPayload })).map(([id, size]) => encodeData(id, Buffer.alloc(size, 0x61))),
    fc.tuple(ids.filter((id) => Buffer.byteLength(id, 'latin1') <= 255), fc.uint8Array({ maxLength: 64 })).chain(([id, payload]) => mutate(encodeData(id, Buffer.from(payload)))),
    fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
  );

/** A poll record's frame (0x00 + JSON or a data frame), mutated or not. */
export const pollFrameArb = (ids: fc.Arbitrary<string>): fc.Arbitrary<Buffer> =>
  fc.oneof(
    controlArb(ids).map(controlFrame),
    controlArb(ids).chain((message) => mutate(controlFrame(message))),
    binaryFrameArb(ids, 2000),
  );
