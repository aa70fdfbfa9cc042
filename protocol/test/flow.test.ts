import { ReceiveCredit, SendCredit } from '../src';

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
    const credit = new SendCredit(0);
    let woke = false;
    credit.whenOpen(() => (woke = true));
    credit.clear();
    credit.grant(10);
    expect(woke).toBe(false);
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
});
