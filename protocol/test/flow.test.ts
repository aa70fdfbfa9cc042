import { BodySender, FlowControlError, INITIAL_WINDOW, MAX_CHUNK_BYTES, MAX_OVERSHOOT_BYTES, ReceiveCredit, SendCredit } from '../src';

describe('SendCredit', () => {
  it('closes when spent and wakes waiters when credit returns', () => {
    const credit = new SendCredit(100);
    credit.spend(60);
    expect(credit.open).toBe(true);
    credit.spend(60);
    expect(credit.open).toBe(false);
    const woke: number[] = [];
    credit.whenOpen(() => woke.push(1));
    credit.grant(10);
    expect(woke).toEqual([]); // still at -10
    credit.grant(50);
    expect(woke).toEqual([1]);
    expect(credit.bytes).toBe(40);
  });

  it('drops waiters on clear', () => {
    const credit = new SendCredit(10);
    credit.spend(10);
    let woke = false;
    credit.whenOpen(() => (woke = true));
    credit.clear();
    credit.grant(10);
    expect(woke).toBe(false);
  });

  it('refuses a forged grant that would lift the credit above the window, and keeps its credit', () => {
    const credit = new SendCredit(100);
    credit.spend(30);
    expect(() => credit.grant(31)).toThrow(FlowControlError);
    expect(credit.bytes).toBe(70);
    credit.grant(30);
    expect(credit.bytes).toBe(100);
    expect(() => credit.grant(1)).toThrow(FlowControlError);
  });

  it('refuses a huge grant however much was sent', () => {
    const credit = new SendCredit();
    credit.spend(INITIAL_WINDOW);
    expect(() => credit.grant(2 ** 31)).toThrow(FlowControlError);
  });
});

describe('ReceiveCredit', () => {
  it('grants in batches of at least half a window, and grants everything consumed', () => {
    const grants: number[] = [];
    const receive = new ReceiveCredit((bytes) => grants.push(bytes), 100);
    for (let i = 0; i < 10; i++) receive.consumed(15);
    expect(grants).toEqual([60, 60]);
    expect(grants.every((g) => g >= 50)).toBe(true);
  });

  it('takes a window plus one frame of overshoot, and throws for one byte more', () => {
    const receive = new ReceiveCredit(() => undefined, 1000);
    receive.received(1000 + MAX_OVERSHOOT_BYTES);
    expect(() => receive.received(1)).toThrow(FlowControlError);
  });

  it('lets a sender that respects its credit go on for ever', () => {
    const receive = new ReceiveCredit((bytes) => credit.grant(bytes));
    const credit = new SendCredit();
    for (let i = 0; i < 200; i++) {
      expect(credit.open).toBe(true);
      credit.spend(MAX_CHUNK_BYTES);
      receive.received(MAX_CHUNK_BYTES);
      receive.consumed(MAX_CHUNK_BYTES);
    }
    expect(receive.held).toBeLessThanOrEqual(INITIAL_WINDOW);
  });

  it('throws for a sender that ignores its credit once it is past the window', () => {
    const receive = new ReceiveCredit(() => undefined);
    let sent = 0;
    expect(() => {
      for (;;) {
        receive.received(MAX_CHUNK_BYTES);
        sent += MAX_CHUNK_BYTES;
      }
    }).toThrow(FlowControlError);
    expect(sent).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_OVERSHOOT_BYTES);
  });
});

describe('BodySender', () => {
  it('never sends more than its credit plus one frame, even for one huge chunk', () => {
    const frames: Buffer[] = [];
    const sender = new BodySender((frame) => frames.push(frame), 100_000);
    expect(sender.write(Buffer.alloc(5 * MAX_CHUNK_BYTES))).toBe(false);
    const sent = frames.reduce((n, f) => n + f.byteLength, 0);
    expect(sent).toBeLessThanOrEqual(100_000 + MAX_CHUNK_BYTES);
    expect(frames.every((f) => f.byteLength <= MAX_CHUNK_BYTES)).toBe(true);
  });

  it('sends the end only after every frame before it, once credit lets them go', () => {
    const events: string[] = [];
    const sender = new BodySender((frame) => events.push(`data ${frame.byteLength}`), MAX_CHUNK_BYTES);
    sender.write(Buffer.alloc(3 * MAX_CHUNK_BYTES));
    let ready = false;
    sender.whenReady(() => (ready = true));
    sender.end(() => events.push('end'));
    expect(events).toEqual([`data ${MAX_CHUNK_BYTES}`]);
    sender.grant(MAX_CHUNK_BYTES);
    expect(events).toEqual([`data ${MAX_CHUNK_BYTES}`, `data ${MAX_CHUNK_BYTES}`]);
    sender.grant(MAX_CHUNK_BYTES);
    expect(events).toEqual([`data ${MAX_CHUNK_BYTES}`, `data ${MAX_CHUNK_BYTES}`, `data ${MAX_CHUNK_BYTES}`, 'end']);
    expect(ready).toBe(false); // the credit is spent again: the caller waits for the next grant
  });

  it('throws for a grant beyond what it sent', () => {
    const sender = new BodySender(() => undefined, 1000);
    sender.write(Buffer.alloc(10));
    expect(() => sender.grant(11)).toThrow(FlowControlError);
  });

  it('drops frames waiting for credit when cleared', () => {
    const frames: Buffer[] = [];
    const sender = new BodySender((frame) => frames.push(frame), 1);
    sender.write(Buffer.alloc(3 * MAX_CHUNK_BYTES));
    sender.clear();
    sender.grant(1);
    expect(frames).toHaveLength(1);
  });
});
