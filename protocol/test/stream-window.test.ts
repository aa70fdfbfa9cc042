/**
 * Growing windows (protocol/src/stream-window.ts, flow.ts): a receiver grows a stream's window on
 * `blocked` only while its consumer keeps up, never past its max or its link's budget, and a
 * sender accepts grants up to the receiver's declared max and no further.
 */
import fc from 'fast-check';
import {
  BodySender,
  declaredWindow,
  FlowControlError,
  growingWindows,
  INITIAL_WINDOW,
  MAX_CHUNK_BYTES,
  MAX_STREAM_WINDOW,
  ReceiveCredit,
  SendCredit,
  WindowBudget,
} from '../src';

const MIB = 1024 * 1024;

/** A receiver whose grants are recorded, growing up to `max` within `budget`. */
function receiver(max = 8 * MIB, budget = new WindowBudget(64 * MIB)) {
  const grants: number[] = [];
  const credit = new ReceiveCredit((bytes) => grants.push(bytes), INITIAL_WINDOW, { max, budget });
  return { credit, grants, budget, granted: () => grants.reduce((sum, bytes) => sum + bytes, 0) };
}

describe('declaredWindow', () => {
  it('reads a whole number of bytes from the initial window to 1 GiB, and nothing else', () => {
    expect(declaredWindow(String(MAX_STREAM_WINDOW))).toBe(MAX_STREAM_WINDOW);
    expect(declaredWindow(` ${INITIAL_WINDOW} `)).toBe(INITIAL_WINDOW);
    expect(declaredWindow(undefined)).toBeUndefined();
    expect(declaredWindow(String(INITIAL_WINDOW - 1))).toBeUndefined();
    expect(declaredWindow(String(2 * 1024 * MIB))).toBeUndefined();
    expect(declaredWindow('16MiB')).toBeUndefined();
    expect(declaredWindow('1e7')).toBeUndefined();
    expect(declaredWindow([String(MAX_STREAM_WINDOW), String(MAX_STREAM_WINDOW)])).toBeUndefined();
  });

  it('gives a link growing windows only when the peer declared one', () => {
    expect(growingWindows(undefined)).toBeUndefined();
    expect(growingWindows('nonsense')).toBeUndefined();
    expect(growingWindows(String(4 * MIB))).toMatchObject({ own: MAX_STREAM_WINDOW, peer: 4 * MIB });
  });
});

describe('ReceiveCredit that grows', () => {
  it('doubles the window on blocked when its consumer took what arrived, granting the difference at once', () => {
    const { credit, grants } = receiver();
    credit.received(INITIAL_WINDOW);
    credit.consumed(INITIAL_WINDOW);
    expect(grants).toEqual([INITIAL_WINDOW]);
    credit.blocked();
    expect(grants).toEqual([INITIAL_WINDOW, INITIAL_WINDOW]);
    expect(credit.size).toBe(2 * INITIAL_WINDOW);
    // The sender may now have two windows in flight, plus one frame over, and no more.
    credit.received(2 * INITIAL_WINDOW + MAX_CHUNK_BYTES);
    expect(() => credit.received(1)).toThrow(FlowControlError);
  });

  it('does not grow while its consumer holds the bytes: a stalled caller still costs one window', () => {
    const { credit, grants } = receiver();
    credit.received(INITIAL_WINDOW);
    credit.consumed(INITIAL_WINDOW / 8);
    credit.blocked();
    expect(grants).toEqual([]);
    expect(credit.size).toBe(INITIAL_WINDOW);
    expect(() => credit.received(MAX_CHUNK_BYTES + 1)).toThrow(FlowControlError);
  });

  it('grows once its consumer catches up while the sender still waits, and not once the sender sent again', () => {
    const first = receiver();
    first.credit.received(INITIAL_WINDOW);
    first.credit.blocked();
    expect(first.grants).toEqual([]);
    first.credit.consumed(INITIAL_WINDOW); // caught up; the sender, blocked, has sent nothing since
    expect(first.grants).toEqual([INITIAL_WINDOW, INITIAL_WINDOW]);
    expect(first.credit.size).toBe(2 * INITIAL_WINDOW);

    const second = receiver();
    second.credit.received(INITIAL_WINDOW);
    second.credit.blocked();
    second.credit.received(1024); // a grant reached the sender: it is no longer waiting
    second.credit.consumed(INITIAL_WINDOW + 1024);
    expect(second.grants).toEqual([INITIAL_WINDOW + 1024]);
    expect(second.credit.size).toBe(INITIAL_WINDOW);
  });

  it('stops at its max and within its link budget, and gives its growth back when released', () => {
    const budget = new WindowBudget(3 * MIB);
    const a = receiver(4 * MIB, budget);
    const b = receiver(4 * MIB, budget);
    const runFast = (credit: ReceiveCredit) => {
      for (let i = 0; i < 6; i++) {
        credit.received(credit.size - credit.held);
        credit.consumed(credit.held);
        credit.blocked();
      }
    };
    runFast(a.credit);
    expect(a.credit.size).toBe(4 * MIB);
    runFast(b.credit);
    expect(b.credit.size).toBe(1 * MIB); // the first stream's growth spent the budget
    expect(budget.available).toBe(0);
    a.credit.release();
    expect(budget.available).toBe(3 * MIB);
    runFast(b.credit);
    expect(b.credit.size).toBe(4 * MIB);
  });

  it("starts a new stream's growth at the window the last stream that grew ended with", () => {
    const budget = new WindowBudget(64 * MIB);
    const runFast = (credit: ReceiveCredit, rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        credit.received(credit.size - credit.held);
        credit.consumed(credit.held);
        credit.blocked();
      }
    };
    const first = receiver(16 * MIB, budget);
    runFast(first.credit, 3); // 1 → 2 → 4 → 8 MiB, one round trip each
    expect(first.credit.size).toBe(8 * MIB);
    first.credit.release();
    expect(budget.lastWindow).toBe(8 * MIB);

    // The next stream crosses the same round trip: its first `blocked` grants it the whole 8 MiB.
    const second = receiver(16 * MIB, budget);
    runFast(second.credit, 1);
    expect(second.credit.size).toBe(8 * MIB);
    expect(second.grants).toEqual([INITIAL_WINDOW, 7 * MIB]);
    runFast(second.credit, 1);
    expect(second.credit.size).toBe(16 * MIB); // and doubles from there

    // A stalled consumer still costs one window, whatever the last stream reached.
    const stalled = receiver(16 * MIB, budget);
    stalled.credit.received(INITIAL_WINDOW);
    stalled.credit.blocked();
    expect(stalled.credit.size).toBe(INITIAL_WINDOW);
    // A stream that never grew leaves the note as it was.
    stalled.credit.release();
    expect(budget.lastWindow).toBe(8 * MIB);
  });

  it('jumps no further than its own max and what the budget has left', () => {
    const budget = new WindowBudget(5 * MIB);
    budget.give(0, 16 * MIB);
    const narrow = receiver(4 * MIB, budget);
    narrow.credit.received(INITIAL_WINDOW);
    narrow.credit.consumed(INITIAL_WINDOW);
    narrow.credit.blocked();
    expect(narrow.credit.size).toBe(4 * MIB);
    const wide = receiver(16 * MIB, budget);
    wide.credit.received(INITIAL_WINDOW);
    wide.credit.consumed(INITIAL_WINDOW);
    wide.credit.blocked();
    expect(wide.credit.size).toBe(3 * MIB); // 2 MiB of the budget was left
    expect(budget.available).toBe(0);
  });

  it('ignores blocked when the link keeps fixed windows', () => {
    const grants: number[] = [];
    const credit = new ReceiveCredit((bytes) => grants.push(bytes));
    credit.received(INITIAL_WINDOW);
    credit.consumed(INITIAL_WINDOW);
    credit.blocked();
    expect(grants).toEqual([INITIAL_WINDOW]);
    expect(credit.size).toBe(INITIAL_WINDOW);
  });

  it('never lets the window past its max nor the link past its budget, whatever the order of events', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ kind: fc.constantFrom('send', 'consume', 'blocked', 'release'), stream: fc.nat(2), share: fc.double({ min: 0, max: 1, noNaN: true }) }), { maxLength: 200 }),
        (events) => {
          const budget = new WindowBudget(5 * MIB);
          const streams = [0, 1, 2].map(() => {
            const state = { credit: undefined as unknown as ReceiveCredit, given: 0, sent: 0, taken: 0 };
            state.credit = new ReceiveCredit((bytes) => (state.given += bytes), INITIAL_WINDOW, { max: 4 * MIB, budget });
            return state;
          });
          for (const event of events) {
            const stream = streams[event.stream];
            const { credit } = stream;
            if (event.kind === 'send') {
              // An honest sender: within the credit it was given (and the window it started with).
              const room = INITIAL_WINDOW + stream.given - stream.sent;
              const bytes = Math.floor(room * event.share);
              if (bytes > 0) {
                credit.received(bytes);
                stream.sent += bytes;
              }
            } else if (event.kind === 'consume') {
              const bytes = Math.floor((stream.sent - stream.taken) * event.share);
              if (bytes > 0) {
                credit.consumed(bytes);
                stream.taken += bytes;
              }
            } else if (event.kind === 'blocked') credit.blocked();
            else credit.release();
            expect(credit.size).toBeLessThanOrEqual(4 * MIB);
            expect(budget.available).toBeGreaterThanOrEqual(0);
            // The credit the sender holds never passes the receiver's window.
            expect(INITIAL_WINDOW + stream.given - stream.sent).toBeLessThanOrEqual(credit.size);
          }
        },
      ),
    );
  });
});

describe('SendCredit and BodySender towards a receiver that grows', () => {
  it('takes grants up to the declared max, and refuses one past it', () => {
    const credit = new SendCredit(INITIAL_WINDOW, 4 * MIB);
    credit.spend(INITIAL_WINDOW);
    credit.grant(3 * MIB);
    expect(credit.bytes).toBe(3 * MIB);
    expect(() => credit.grant(MIB + 1)).toThrow(/past the receiver's 4194304-byte window/);
    expect(credit.bytes).toBe(3 * MIB);
  });

  it('says blocked once per stall, and only when its credit ran out', () => {
    const frames: number[] = [];
    let blocked = 0;
    const sender = new BodySender((payload) => frames.push(payload.byteLength), INITIAL_WINDOW, { max: 4 * MIB, sendBlocked: () => (blocked += 1) });
    sender.write(Buffer.alloc(INITIAL_WINDOW / 2));
    expect(blocked).toBe(0);
    sender.write(Buffer.alloc(INITIAL_WINDOW));
    expect(blocked).toBe(1);
    sender.write(Buffer.alloc(MAX_CHUNK_BYTES));
    expect(blocked).toBe(1);
    // The receiver takes it all and doubles the window: everything waiting goes, then a new stall.
    sender.grant(INITIAL_WINDOW + MIB);
    expect(frames.reduce((sum, bytes) => sum + bytes, 0)).toBe(INITIAL_WINDOW * 1.5 + MAX_CHUNK_BYTES);
    expect(blocked).toBe(1);
    sender.write(Buffer.alloc(2 * MIB));
    expect(blocked).toBe(2);
  });

  it('never says blocked to a receiver with fixed windows', () => {
    const sender = new BodySender(() => undefined);
    expect(() => sender.write(Buffer.alloc(2 * INITIAL_WINDOW))).not.toThrow();
    expect(() => sender.grant(INITIAL_WINDOW + 1)).toThrow(FlowControlError);
  });
});
