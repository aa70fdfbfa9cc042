/**
 * Where recently seen running proxies listen, so relaying a request does not ask the Docker
 * engine about the user's container every time (a socket round trip to dockerd, about a
 * millisecond, on every relayed request).
 *
 * A cache of the engine, never a record of its own: an entry lives at most `ttlMs`, is dropped the
 * moment the driver hears of a change (a container event, a remove, a failed connection), and the
 * driver serves from it only while the event stream that would report such a change is connected.
 * A read that was in flight when its owner was forgotten does not store what it read, because the
 * engine may have answered before the change.
 */
import { TtlCache } from '@ctll/protocol';
import type { ProxyEndpoint } from './driver';

export class EndpointCache {
  private readonly entries: TtlCache<string, ProxyEndpoint>;
  /** Owners with a read in flight, and whether they were forgotten since it began. */
  private readonly reading = new Map<string, { count: number; forgotten: boolean }>();

  constructor(ttlMs: number, maxEntries = 10_000, now: () => number = Date.now) {
    this.entries = new TtlCache({ ttlMs, maxEntries, now });
  }

  get(ownerHash: string): ProxyEndpoint | undefined {
    return this.entries.get(ownerHash);
  }

  /**
   * Reads the owner's endpoint with `read` (from the engine) and keeps a running one, unless the
   * owner was forgotten while the read was in flight.
   */
  async through(ownerHash: string, read: () => Promise<ProxyEndpoint | null>): Promise<ProxyEndpoint | null> {
    const mark = this.reading.get(ownerHash) ?? { count: 0, forgotten: false };
    mark.count += 1;
    this.reading.set(ownerHash, mark);
    try {
      const endpoint = await read();
      if (endpoint && !mark.forgotten) this.entries.set(ownerHash, endpoint);
      return endpoint;
    } finally {
      mark.count -= 1;
      if (mark.count === 0) this.reading.delete(ownerHash);
    }
  }

  forget(ownerHash: string): void {
    this.entries.delete(ownerHash);
    const mark = this.reading.get(ownerHash);
    if (mark) mark.forgotten = true;
  }

  clear(): void {
    this.entries.clear();
    for (const mark of this.reading.values()) mark.forgotten = true;
  }

  get size(): number {
    return this.entries.size;
  }
}
