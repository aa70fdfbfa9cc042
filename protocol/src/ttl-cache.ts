/**
 * A map whose entries expire: what the relay remembers for a short while (relay keys it checked,
 * where a proxy listens, which container exits it already reported). One implementation, so the
 * expiry boundary and the size bound mean the same everywhere.
 *
 * An entry set at t with a life of L is there up to t + L - 1 ms and gone from t + L on. Setting a
 * key again replaces its value and starts its life anew. With `maxEntries`, storing one more entry
 * forgets the least recently stored one. Expired entries are dropped when read and, oldest first,
 * whenever something is stored, so a cache nobody reads does not keep growing. The clock is
 * injectable so the callers' tests can move time.
 */
export interface TtlCacheOptions {
  /** How long an entry lives unless `set` is given its own expiry; 0 stores nothing. */
  ttlMs: number;
  /** Most entries kept; unbounded when omitted. */
  maxEntries?: number;
  now?: () => number;
}

export class TtlCache<K, V> {
  // A Map iterates in insertion order, and `set` re-inserts: the first entry is the least recently stored.
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: TtlCacheOptions) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries ?? Infinity;
    this.now = options.now ?? Date.now;
  }

  /** The live value for `key`, or undefined if there is none or it has expired. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  /** Stores `value` until `expiresAt` (ms on the cache's clock; default now + ttlMs). An expiry already past stores nothing. */
  set(key: K, value: V, expiresAt = this.now() + this.ttlMs): void {
    this.entries.delete(key);
    const now = this.now();
    if (expiresAt <= now) return;
    this.dropExpired(now);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, { value, expiresAt });
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /** Live entries, least recently stored first. */
  *[Symbol.iterator](): IterableIterator<[K, V]> {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt > now) yield [key, entry.value];
  }

  /** How many live entries there are. */
  get size(): number {
    const now = this.now();
    let live = 0;
    for (const entry of this.entries.values()) if (entry.expiresAt > now) live += 1;
    return live;
  }

  /**
   * Drops expired entries from the oldest on, stopping at the first live one: with one life for all
   * entries that is every expired entry; an entry given a shorter life of its own behind a longer-lived
   * one waits for a read, the size bound, or a later sweep.
   */
  private dropExpired(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now) break;
      this.entries.delete(key);
    }
  }
}
