/**
 * Which proxy containers run now, as far as the docker driver has seen: its own creates and
 * removes, the engine's events, and every full listing (start-up, each sweep). It answers
 * /metrics and /health without asking the engine, so an anonymous scrape or health check costs
 * no engine call. A count to report, never a record to act on: inspect and list still ask the
 * engine.
 *
 * A listing takes a while; something the driver saw after the listing began wins over it, so an
 * older listing never undoes a newer create or death.
 */
export class ProxyCensus {
  /** owner hash → container id */
  private readonly running = new Map<string, string>();
  /** owner hash → sequence number of its last change, while a listing that began earlier may still land */
  private readonly changed = new Map<string, number>();
  private sequence = 0;
  private listings = 0;

  get size(): number {
    return this.running.size;
  }

  started(ownerHash: string, containerId: string): void {
    this.note(ownerHash);
    this.running.set(ownerHash, containerId);
  }

  /** The owner's container ended; `containerId` limits it to that container (an event about an older one changes nothing). */
  ended(ownerHash: string, containerId?: string): void {
    if (containerId !== undefined && this.running.get(ownerHash) !== containerId) return;
    this.note(ownerHash);
    this.running.delete(ownerHash);
  }

  /** Call right before asking the engine for a listing; hand the result to `listed`. */
  beginListing(): number {
    this.listings += 1;
    return this.sequence;
  }

  /** The running containers a listing begun at `since` found. */
  listed(since: number, running: Iterable<{ ownerHash: string; containerId: string }>): void {
    const found = new Map<string, string>();
    for (const { ownerHash, containerId } of running) found.set(ownerHash, containerId);
    const newer = (ownerHash: string) => (this.changed.get(ownerHash) ?? -1) > since;
    for (const ownerHash of [...this.running.keys()]) if (!found.has(ownerHash) && !newer(ownerHash)) this.running.delete(ownerHash);
    for (const [ownerHash, containerId] of found) if (!newer(ownerHash)) this.running.set(ownerHash, containerId);
    this.settle();
  }

  /** A listing that failed still ends. */
  listingFailed(): void {
    this.settle();
  }

  private note(ownerHash: string): void {
    this.sequence += 1;
    this.changed.set(ownerHash, this.sequence);
  }

  /** With no listing in flight, no change needs remembering. */
  private settle(): void {
    this.listings -= 1;
    if (this.listings <= 0) {
      this.listings = 0;
      this.changed.clear();
    }
  }
}
