/**
 * The zrok path as the proxy sees it: the fallback for relayed requests that find no
 * desktop tunnel (order: WebSocket tunnel, polling tunnel, zrok share, 503). It owns the share
 * directory, the HTTP client to shares and the count of requests running over them, and it
 * describes itself for `/status`: a healthy share is listed among the desktops (transport
 * `zrok`), because it is one, and so keeps the proxy from being culled as idle.
 */
import { CatalogueError, errorMessage, namedTargetOf, RelayError, type ProxyZrokStatus } from '@ctll/protocol';
import type { ProxyConfig } from '../config';
import type { Logger } from '../logger';
import { ShareDirectory, type KnownShare } from './directory';
import { discoveryClient } from './discovery';
import { checkShare } from './health-check';
import { ShareClient } from './share-client';

export interface ZrokPathOptions {
  apiBackendUrl: string;
  userHash: string;
  secret: string;
  allowInsecure: boolean;
  /** The hosts (and subdomains) a share may be on. */
  shareDomains: readonly string[];
  discoveryIntervalMs: number;
  maxStreams: number;
  healthTimeoutMs?: number;
}

export const DEFAULT_ZROK_PATH_OPTIONS = Object.freeze({
  // Long enough for a share across the world, short enough that a dead one is noticed within a pull.
  healthTimeoutMs: 5_000,
});

/** One request's hold on a share: counted among the share's requests until released. */
export interface ShareLease {
  share: KnownShare;
  client: ShareClient;
  /** The share did not answer: it is not used again until a check finds it healthy. */
  failed(error: string): void;
  /** The request is over; a second call does nothing. */
  release(): void;
}

export interface ShareDesktopInfo {
  id: string;
  transport: 'zrok';
  connectedAt: string;
  client: string;
  activeStreams: number;
}

export class ZrokPath {
  private readonly client: ShareClient;
  private readonly directory: ShareDirectory;
  private readonly options: Required<ZrokPathOptions>;
  /** Exchanges running, by share id. */
  private readonly active = new Map<string, number>();
  private activeTotal = 0;

  constructor(options: ZrokPathOptions, logger: Logger) {
    this.options = { ...DEFAULT_ZROK_PATH_OPTIONS, ...options };
    this.client = new ShareClient({ allowInsecure: options.allowInsecure, shareDomains: options.shareDomains });
    this.directory = new ShareDirectory(
      { intervalMs: options.discoveryIntervalMs },
      discoveryClient({ apiBackendUrl: options.apiBackendUrl, userHash: options.userHash, secret: options.secret }),
      (url) => checkShare(this.client, url, this.options.healthTimeoutMs),
      logger,
    );
  }

  /** The zrok path for this proxy, or undefined when api-backend's address or the owner is unknown. */
  static fromConfig(config: ProxyConfig, logger: Logger): ZrokPath | undefined {
    if (!config.zrok.apiBackendUrl || config.userHash === 'unknown') return undefined;
    return new ZrokPath(
      {
        apiBackendUrl: config.zrok.apiBackendUrl,
        userHash: config.userHash,
        secret: config.secret,
        allowInsecure: config.zrok.allowInsecure,
        shareDomains: config.zrok.shareDomains,
        discoveryIntervalMs: config.zrok.discoveryIntervalMs,
        maxStreams: config.maxStreamsPerTunnel,
      },
      logger,
    );
  }

  start(): this {
    this.directory.start();
    return this;
  }

  /** Pulls the share list and checks every share in a pull that starts after this call (api-backend asks when a share registers; see ShareDirectory.refreshNow). */
  refreshNow(): Promise<void> {
    return this.directory.refreshNow();
  }

  /**
   * A healthy share for a request to `path`, held until `release`; the zrok path's refusal of the
   * request; or undefined, touching nothing, when there is no share to use.
   */
  async lease(path: string): Promise<ShareLease | RelayError | undefined> {
    const share = await this.directory.pick();
    if (!share) return undefined;
    // A zrok share exposes one local server, the default target; the `/t/<name>/` prefix means
    // something only to the bridge, which is not on this path. Passed on, the default target would
    // answer a request meant for another server.
    const named = namedTargetOf(path);
    if (named) {
      return new CatalogueError(
        'target_needs_tunnel',
        `the target "${named.name}" is reached only through your desktop's tunnel, which is not connected; its zrok share carries the default target only`,
      );
    }
    if (this.activeTotal >= this.options.maxStreams) {
      return new CatalogueError('too_many_streams', errorMessage('too_many_streams', { max: this.options.maxStreams }));
    }
    this.count(share.shareId, +1);
    let released = false;
    return {
      share,
      client: this.client,
      failed: (error) => this.directory.markFailed(share, error),
      release: () => {
        if (released) return;
        released = true;
        this.count(share.shareId, -1);
      },
    };
  }

  /** `'zrok'` while a healthy share could take requests. */
  transport(): 'zrok' | null {
    return this.directory.best() ? 'zrok' : null;
  }

  /** Healthy shares as desktops for `/status` (never their URLs). */
  desktops(): ShareDesktopInfo[] {
    return this.directory.healthyShares().map((share) => ({
      id: share.shareId,
      transport: 'zrok',
      connectedAt: new Date(share.healthySince ?? Date.now()).toISOString(),
      client: 'zrok share',
      activeStreams: this.active.get(share.shareId) ?? 0,
    }));
  }

  status(): ProxyZrokStatus {
    return { ...this.directory.status(), activeRequests: this.activeTotal };
  }

  private count(shareId: string, delta: number): void {
    this.activeTotal += delta;
    const now = (this.active.get(shareId) ?? 0) + delta;
    if (now === 0) this.active.delete(shareId);
    else this.active.set(shareId, now);
  }

  close(): void {
    this.directory.close();
    this.client.close();
  }
}
