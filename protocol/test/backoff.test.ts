import { Backoff } from '../src/backoff';

/** A random source that always returns `value`, so every delay is known in advance. */
const fixed = (value: number) => () => value;

describe('reconnect backoff', () => {
  it('doubles from 1 s and stays at 30 s', () => {
    const backoff = new Backoff({ random: fixed(0.5) }); // 0.5 means no spread
    const delays = Array.from({ length: 9 }, () => backoff.next());
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    expect(backoff.attempts).toBe(9);
  });

  it('spreads each delay by at most ±20 %', () => {
    expect(new Backoff({ random: fixed(0) }).next()).toBe(800);
    expect(new Backoff({ random: fixed(0.999999) }).next()).toBe(1200);
    const low = new Backoff({ random: fixed(0) });
    for (let i = 0; i < 10; i += 1) low.next();
    expect(low.next()).toBe(24000);
  });

  it('starts again from 1 s after a reset (a connection that stayed up)', () => {
    const backoff = new Backoff({ random: fixed(0.5) });
    backoff.next();
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(backoff.next()).toBe(1000);
  });

  it('follows a custom schedule and refuses nonsense', () => {
    const backoff = new Backoff({ stepsMs: [10, 20], jitter: 0, random: fixed(0.9) });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([10, 20, 20]);
    expect(() => new Backoff({ stepsMs: [] })).toThrow(RangeError);
    expect(() => new Backoff({ jitter: 1 })).toThrow(/jitter/);
  });
});
