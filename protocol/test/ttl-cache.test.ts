/** The shared TTL cache, on a controlled clock: the expiry boundary, refresh, own expiries and the size bound. */
import { TtlCache } from '../src/ttl-cache';

describe('TtlCache', () => {
  let now = 0;
  const clock = () => now;
  beforeEach(() => (now = 1_000));

  it('serves an entry up to the last millisecond of its life and not at its end', () => {
    const cache = new TtlCache<string, number>({ ttlMs: 100, now: clock });
    cache.set('a', 1);
    now += 99;
    expect(cache.get('a')).toBe(1);
    expect(cache.has('a')).toBe(true);
    now += 1;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.has('a')).toBe(false);
    expect(cache.size).toBe(0);
  });

  it('starts an entry\'s life anew when it is set again', () => {
    const cache = new TtlCache<string, number>({ ttlMs: 100, now: clock });
    cache.set('a', 1);
    now += 60;
    cache.set('a', 2);
    now += 60; // 120 ms after the first set, 60 after the refresh
    expect(cache.get('a')).toBe(2);
    now += 40;
    expect(cache.get('a')).toBeUndefined();
  });

  it('keeps an entry until the expiry it was given, however that compares with the default life', () => {
    const cache = new TtlCache<string, number>({ ttlMs: 100, now: clock });
    cache.set('short', 1, now + 10);
    cache.set('long', 2, now + 1_000);
    now += 10;
    expect(cache.get('short')).toBeUndefined();
    now += 500;
    expect(cache.get('long')).toBe(2);
  });

  it('stores nothing with a life of 0 or an expiry already past, and such a set removes the old value', () => {
    const none = new TtlCache<string, number>({ ttlMs: 0, now: clock });
    none.set('a', 1);
    expect(none.get('a')).toBeUndefined();
    const cache = new TtlCache<string, number>({ ttlMs: 100, now: clock });
    cache.set('a', 1);
    cache.set('a', 2, now);
    expect(cache.get('a')).toBeUndefined();
  });

  it('holds at most maxEntries, forgetting the least recently stored', () => {
    const cache = new TtlCache<string, number>({ ttlMs: 100, maxEntries: 3, now: clock });
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    cache.set('a', 10); // refreshed: now the most recently stored
    cache.set('d', 4);
    expect(cache.size).toBe(3);
    expect(cache.get('b')).toBeUndefined();
    expect([...cache]).toEqual([['c', 3], ['a', 10], ['d', 4]]);
  });

  it('frees the room of expired entries before forgetting a live one', () => {
    const cache = new TtlCache<string, number>({ ttlMs: 100, maxEntries: 2, now: clock });
    cache.set('old', 1);
    now += 50;
    cache.set('live', 2);
    now += 50; // 'old' has expired, 'live' has 50 ms left
    cache.set('new', 3);
    expect(cache.get('live')).toBe(2);
    expect(cache.get('new')).toBe(3);
  });

  it('does not grow without bound when nobody reads it', () => {
    const cache = new TtlCache<number, number>({ ttlMs: 10, now: clock });
    for (let i = 0; i < 1_000; i += 1) {
      cache.set(i, i);
      now += 1;
    }
    expect(cache.size).toBe(9); // stored at 991..999 ms of the 1,000: each lives 10 ms
    // Memory is what this is about, so look at what is held, expired or not: the entries older than
    // 10 ms were dropped as later ones were stored (at most one expired entry, the one just passed, waits).
    const held = (cache as unknown as { entries: Map<number, unknown> }).entries.size;
    expect(held).toBeLessThanOrEqual(10);
  });

  it('lists only live entries, and delete and clear remove them', () => {
    const cache = new TtlCache<string, number>({ ttlMs: 100, now: clock });
    cache.set('a', 1, now + 10);
    cache.set('b', 2);
    cache.set('c', 3);
    now += 10;
    expect([...cache]).toEqual([['b', 2], ['c', 3]]);
    expect(cache.delete('b')).toBe(true);
    expect(cache.delete('b')).toBe(false);
    expect([...cache]).toEqual([['c', 3]]);
    cache.clear();
    expect(cache.size).toBe(0);
  });
});
