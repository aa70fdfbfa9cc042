import { TtlCache } from '@ctll/protocol';

/**
 * Remembers, per container id, which exits the driver caused itself (stop, remove, a failed
 * start) and which unexpected ones it already reported, so the manager hears of each crash once,
 * whether the news comes from a `die` event, an `oom` event, a `destroy` event or the sweep, and
 * never of a proxy we stopped on purpose. Keyed by container id, not owner: a user's next
 * container is a different one. Entries expire after `ttlMs`; events arrive within seconds.
 *
 * Replicas sharing one engine each see every proxy's events, but only the one that stops a proxy
 * calls `expect`. The others learn of a stop from the engine's `kill` event with a graceful signal
 * (what a stop sends before `die`; a crash or the OOM killer sends none): `stopSeen` marks the
 * container as stopped on purpose for them too.
 */
export class ExitLedger {
  /** Each container's id, with when it was noted (ms since the epoch). */
  private readonly expected: TtlCache<string, number>;
  private readonly reported: TtlCache<string, number>;
  private readonly stopping: TtlCache<string, number>;

  constructor(ttlMs = 10 * 60_000) {
    this.expected = new TtlCache({ ttlMs });
    this.reported = new TtlCache({ ttlMs });
    this.stopping = new TtlCache({ ttlMs });
  }

  /** We are about to stop or remove this container: its exit is no news. */
  expect(containerId: string): void {
    this.expected.set(containerId, Date.now());
  }

  /** The engine says someone (this process, another replica, an operator) is stopping this container. */
  stopSeen(containerId: string): void {
    if (!this.stopping.has(containerId)) this.stopping.set(containerId, Date.now());
  }

  isExpected(containerId: string): boolean {
    return this.expected.has(containerId) || this.stopping.has(containerId);
  }

  /**
   * True, once, when someone else stopped this container at or before `before` (epoch ms) and this
   * process did not: a replica removes what it stops at once, so one still there is an operator's
   * `docker stop`, reported late rather than never.
   */
  claimLateReport(containerId: string, before: number): boolean {
    const at = this.stopping.get(containerId);
    if (at === undefined || at > before || this.expected.has(containerId) || this.reported.has(containerId)) return false;
    this.reported.set(containerId, Date.now());
    return true;
  }

  /** True the first time an unexpected exit of this container is seen; false for repeats. */
  claimReport(containerId: string): boolean {
    if (this.isExpected(containerId) || this.reported.has(containerId)) return false;
    this.reported.set(containerId, Date.now());
    return true;
  }
}
