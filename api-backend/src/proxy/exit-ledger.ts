/**
 * Remembers, per container id, which exits the driver caused itself (stop, remove, a failed
 * start) and which unexpected ones it already reported, so the manager hears of each crash once,
 * whether the news comes from a `die` event, an `oom` event, a `destroy` event or the sweep, and
 * never of a proxy we stopped on purpose. Keyed by container id, not owner: a user's next
 * container is a different one. Entries expire after `ttlMs`; events arrive within seconds.
 */
export class ExitLedger {
  private readonly expected = new Map<string, number>();
  private readonly reported = new Map<string, number>();

  constructor(private readonly ttlMs = 10 * 60_000) {}

  /** We are about to stop or remove this container: its exit is no news. */
  expect(containerId: string): void {
    this.prune();
    this.expected.delete(containerId); // re-inserted at the end, so the maps stay in time order
    this.expected.set(containerId, Date.now());
  }

  isExpected(containerId: string): boolean {
    return this.expected.has(containerId);
  }

  /** True the first time an unexpected exit of this container is seen; false for repeats. */
  claimReport(containerId: string): boolean {
    this.prune();
    if (this.expected.has(containerId) || this.reported.has(containerId)) return false;
    this.reported.set(containerId, Date.now());
    return true;
  }

  private prune(): void {
    const oldest = Date.now() - this.ttlMs;
    for (const map of [this.expected, this.reported]) {
      for (const [id, at] of map) {
        if (at >= oldest) break; // insertion order is time order
        map.delete(id);
      }
    }
  }
}
