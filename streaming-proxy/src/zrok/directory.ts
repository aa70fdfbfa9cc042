/**
 * What this proxy knows about its user's zrok shares, and which one to use.
 *
 * api-backend's registry is the record of which shares exist; the directory mirrors it by pulling
 * on an interval, and on demand when a request finds no desktop tunnel and no healthy share (at
 * most once per `minRefreshMs`, so a burst of requests makes one call). Each pull also
 * health-checks every share; a share that fails a forwarded request is marked unhealthy at once
 * and checked again on the next pull. Requests go to the healthy share heard from most recently.
 * Logs name shares by share id only: their URLs embed zrok share tokens.
 */
import type { ProxyZrokStatus } from '@ctll/protocol';
import type { Logger } from '../logger';
import type { DiscoveredShare } from './discovery';
import type { HealthResult } from './health-check';

export interface KnownShare {
  shareId: string;
  url: URL;
  lastHeartbeatAt: number;
  /** null until the first health check has answered. */
  healthy: boolean | null;
  checkedAt: number | null;
  /** When the share last turned healthy; null while it is not. */
  healthySince: number | null;
  error?: string;
}

export interface DirectoryOptions {
  intervalMs: number;
  minRefreshMs?: number;
  now?: () => number;
}

export const DEFAULT_DIRECTORY_OPTIONS = Object.freeze({
  intervalMs: 10_000,
  minRefreshMs: 1_000,
  now: Date.now,
});

/** The directory's part of the zrok status in `/status` (protocol's ProxyZrokStatus). */
export type DirectoryStatus = Omit<ProxyZrokStatus, 'activeRequests'>;

export class ShareDirectory {
  private readonly options: Required<DirectoryOptions>;
  private shares = new Map<string, KnownShare>();
  private timer: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private lastRefreshAt = Number.NEGATIVE_INFINITY;
  private lastDiscoveryAt: number | null = null;
  private discoveryError: string | undefined;

  constructor(
    options: DirectoryOptions,
    private readonly fetchShares: () => Promise<DiscoveredShare[]>,
    private readonly check: (url: URL) => Promise<HealthResult>,
    private readonly logger: Logger,
  ) {
    this.options = { ...DEFAULT_DIRECTORY_OPTIONS, ...options };
  }

  start(): this {
    if (!this.timer) {
      this.timer = setInterval(() => void this.refresh(), this.options.intervalMs).unref();
      void this.refresh();
    }
    return this;
  }

  close(): void {
    clearInterval(this.timer);
    clearTimeout(this.retry);
    this.timer = undefined;
  }

  /** Pulls the list and checks every share; concurrent callers share one run. */
  refresh(): Promise<void> {
    this.refreshing ??= this.pullAndCheck().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /**
   * A refresh that starts after this call: api-backend asks for one when a share was just
   * registered or removed, and a pull already in flight may have read the registry before that.
   */
  async refreshNow(): Promise<void> {
    if (this.refreshing) await this.refreshing.catch(() => undefined);
    return this.refresh();
  }

  /** The healthy share heard from most recently, without waiting. */
  best(): KnownShare | undefined {
    let best: KnownShare | undefined;
    for (const share of this.shares.values()) {
      if (share.healthy !== true) continue;
      if (!best || share.lastHeartbeatAt > best.lastHeartbeatAt) best = share;
    }
    return best;
  }

  /** A share to use now; when none is known healthy, looks again first (rate-limited). */
  async pick(): Promise<KnownShare | undefined> {
    const known = this.best();
    if (known) return known;
    if (this.refreshing) await this.refreshing;
    else if (this.options.now() - this.lastRefreshAt >= this.options.minRefreshMs) await this.refresh();
    return this.best();
  }

  /** A forwarded request could not reach the share: stop using it until a check passes. */
  markFailed(share: KnownShare, error: string): void {
    if (share.healthy !== false) this.logger.warn('zrok share unhealthy', { share: share.shareId, error });
    share.healthy = false;
    share.healthySince = null;
    share.error = error;
  }

  healthyShares(): KnownShare[] {
    return [...this.shares.values()].filter((share) => share.healthy === true);
  }

  status(): DirectoryStatus {
    const iso = (at: number | null) => (at === null ? null : new Date(at).toISOString());
    return {
      inUse: this.best()?.shareId ?? null,
      shares: [...this.shares.values()].map((share) => ({
        shareId: share.shareId,
        healthy: share.healthy,
        checkedAt: iso(share.checkedAt),
        ...(share.error ? { error: share.error } : {}),
      })),
      lastDiscoveryAt: iso(this.lastDiscoveryAt),
      ...(this.discoveryError ? { discoveryError: this.discoveryError } : {}),
    };
  }

  private async pullAndCheck(): Promise<void> {
    this.lastRefreshAt = this.options.now();
    try {
      this.merge(await this.fetchShares());
      this.lastDiscoveryAt = this.options.now();
      this.discoveryError = undefined;
    } catch (error) {
      // Keep what we knew: api-backend being away says nothing about the shares themselves.
      const message = (error as Error).message;
      const firstFailure = this.discoveryError === undefined;
      if (this.discoveryError !== message) this.logger.warn('zrok discovery failed', { error: message });
      this.discoveryError = message;
      // After a first failure, try again soon rather than a whole interval later (api-backend may
      // still be marking us as started); after that, the interval paces the retries.
      if (firstFailure && this.timer && !this.retry) {
        this.retry = setTimeout(() => {
          this.retry = undefined;
          void this.refresh();
        }, this.options.minRefreshMs).unref();
      }
    }
    await Promise.all([...this.shares.values()].map((share) => this.checkOne(share)));
  }

  private merge(discovered: DiscoveredShare[]): void {
    const next = new Map<string, KnownShare>();
    for (const entry of discovered) {
      let url: URL;
      try {
        url = new URL(entry.publicUrl);
      } catch {
        continue;
      }
      const previous = this.shares.get(entry.shareId);
      const lastHeartbeatAt = Date.parse(entry.lastHeartbeatAt) || 0;
      if (previous && previous.url.href === url.href) {
        previous.lastHeartbeatAt = lastHeartbeatAt;
        next.set(entry.shareId, previous);
      } else {
        next.set(entry.shareId, { shareId: entry.shareId, url, lastHeartbeatAt, healthy: null, checkedAt: null, healthySince: null });
        this.logger.info('zrok share discovered', { share: entry.shareId });
      }
    }
    for (const shareId of this.shares.keys()) {
      if (!next.has(shareId)) this.logger.info('zrok share gone from the registry', { share: shareId });
    }
    this.shares = next;
  }

  private async checkOne(share: KnownShare): Promise<void> {
    const result = await this.check(share.url);
    share.checkedAt = this.options.now();
    if (result.healthy) {
      if (share.healthy !== true) {
        this.logger.info('zrok share healthy', { share: share.shareId });
        share.healthySince = share.checkedAt;
      }
      share.healthy = true;
      share.error = undefined;
    } else {
      this.markFailed(share, result.error ?? 'unhealthy');
    }
  }
}
