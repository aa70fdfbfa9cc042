import { Writable } from 'node:stream';
import { BodySender, detached, DrainCredit, INITIAL_WINDOW } from '../src';

/** A socket read with one frame's payload somewhere inside it, as decoding hands it out. */
function viewInRead(payloadBytes: number, readBytes = 64 * 1024): { read: Buffer; view: Buffer } {
  const read = Buffer.allocUnsafeSlow(readBytes);
  read.fill(7);
  const view = read.subarray(100, 100 + payloadBytes);
  view.fill(42);
  return { read, view };
}

describe('detached: waiting bytes keep no larger buffer alive', () => {
  it('copies a view that is a small part of its parent into a buffer of its own', () => {
    const { read, view } = viewInRead(1000);
    const own = detached(view);
    expect(own.buffer).not.toBe(read.buffer);
    expect(own.buffer.byteLength).toBe(1000);
    expect(own.equals(view)).toBe(true);
  });

  it('returns a buffer that (nearly) owns its memory as it is, so a second call copies nothing', () => {
    const whole = Buffer.allocUnsafeSlow(64 * 1024);
    expect(detached(whole)).toBe(whole);
    const { view } = viewInRead(64 * 1024 - 200);
    expect(detached(view)).toBe(view); // 200 bytes of 64 KiB slack: under 1/16
    const own = detached(viewInRead(500).view);
    expect(detached(own)).toBe(own);
  });
});

describe('BodySender: frames that wait for credit', () => {
  it('sends a chunk that finds credit as the very bytes it was given (no copy)', () => {
    const sent: Buffer[] = [];
    const sender = new BodySender((frame) => sent.push(frame));
    const { read, view } = viewInRead(1000);
    expect(sender.write(view)).toBe(true);
    expect(sent[0].buffer).toBe(read.buffer);
  });

  it('holds a chunk written while frames wait as bytes of its own, and sends it unchanged once granted', () => {
    const sent: Buffer[] = [];
    const sender = new BodySender((frame) => sent.push(frame), 1000);
    sender.write(Buffer.alloc(1500)); // spends the window and a frame over: the sender is blocked
    expect(sender.ready).toBe(false);
    const { read, view } = viewInRead(2000);
    expect(sender.write(view)).toBe(false);
    expect(sent).toHaveLength(1);
    sender.grant(1000);
    sender.grant(500);
    expect(sent).toHaveLength(2);
    expect(sent[1].buffer).not.toBe(read.buffer);
    expect(sent[1].equals(view)).toBe(true);
  });
});

/**
 * A writable that takes each chunk only when the test says so, with a tiny buffer; `written` is
 * every chunk handed to its write(), which it holds until taken.
 */
function slowWritable(): { target: Writable; received: Buffer[]; written: Buffer[]; takeAll(): void } {
  const callbacks: Array<() => void> = [];
  const received: Buffer[] = [];
  const written: Buffer[] = [];
  const target = new Writable({
    highWaterMark: 100,
    write(chunk: Buffer, _encoding, callback) {
      received.push(chunk);
      callbacks.push(callback);
    },
  });
  const write = target.write.bind(target) as (chunk: Buffer) => boolean;
  target.write = ((chunk: Buffer) => {
    written.push(chunk);
    return write(chunk);
  }) as typeof target.write;
  return {
    target,
    received,
    written,
    takeAll: () => {
      while (callbacks.length > 0) callbacks.shift()!();
    },
  };
}

describe('DrainCredit', () => {
  it('counts bytes as taken at once while the writable keeps up', () => {
    const taken: number[] = [];
    const credit = new DrainCredit((bytes) => taken.push(bytes));
    const { target, takeAll } = slowWritable();
    credit.write(target, Buffer.alloc(40));
    takeAll();
    credit.write(target, Buffer.alloc(30));
    expect(taken).toEqual([40, 30]);
    expect(credit.waiting).toBe(0);
  });

  it('counts buffered bytes only on drain, all at once, and hands the writable its own copies meanwhile', async () => {
    const taken: number[] = [];
    const credit = new DrainCredit((bytes) => taken.push(bytes));
    const { target, received, takeAll } = slowWritable();
    credit.write(target, Buffer.alloc(150)); // past the writable's 100 bytes: it buffers
    const { read, view } = viewInRead(500);
    credit.write(target, view);
    expect(taken).toEqual([]);
    expect(credit.waiting).toBe(650);
    takeAll();
    await new Promise((resolve) => setImmediate(resolve));
    takeAll();
    await new Promise((resolve) => setImmediate(resolve));
    expect(taken).toEqual([650]);
    expect(credit.waiting).toBe(0);
    const second = received[1];
    expect(second.buffer).not.toBe(read.buffer);
    expect(second.equals(view)).toBe(true);
  });

  it('keeps a window of waiting views to about a window of memory', () => {
    // The failure this guards against: a stalled reader holding views of 64 KiB reads, each of
    // which carried a little of this stream, keeps every read alive.
    const credit = new DrainCredit(() => undefined);
    const { target, written } = slowWritable();
    credit.write(target, Buffer.alloc(200));
    while (credit.waiting < INITIAL_WINDOW) credit.write(target, viewInRead(4 * 1024).view);
    expect(target.writableLength).toBe(credit.waiting);
    const held = new Set(written.map((chunk) => chunk.buffer));
    const heldBytes = [...held].reduce((sum, buffer) => sum + buffer.byteLength, 0);
    expect(heldBytes).toBeLessThan(INITIAL_WINDOW * 1.07);
  });
});
