/**
 * StreamingProxyManager: one proxy per user, started on demand, stopped on request or when idle.
 * At shutdown, proxies that outlive api-backend (containers) are left running for the next start
 * to adopt; those that cannot (child processes) are stopped with reason `shutdown`.
 *
 * The driver is the record of what runs; the manager holds no map of its own. Work for one user
 * is serialised by a keyed lock, so concurrent starts make one proxy and a start during a stop
 * waits for the stop. With several api-backend replicas, `replicaLock` serialises a start or stop
 * across them too; a replica that waited inspects anew and adopts the proxy the other one made.
 * Idle means: no desktop connected, no request in flight, and no activity
 * for PROXY_IDLE_TIMEOUT_MS, as the proxy itself reports. Lifecycle lines say "StreamingProxy"
 * so `docker logs <api-backend> | grep StreamingProxy` tells the story; users appear as hashes.
 */
import { EventEmitter } from 'node:events';
import { CapacityError, RateLimitedError, ServiceUnavailableError, type TargetHealth, type TunnelRtt } from '@ctll/protocol';
import type { ProxyDriver, ProxyEndpoint, ProxyHandle, StopReason } from './driver';
import { KeyedLock } from './keyed-lock';
import { ownerKey, type ReplicaLock } from './replica-lock';
import { mapLimit } from './map-limit';
import type { ProxyClient, ProxyStatus } from './proxy-client';
import { userHash } from './naming';
import type { Logger } from '../logger';

export interface ManagerOptions {
  idleTimeoutMs: number;
  /**
   * Runs right before a proxy is removed (stop, idle cull, shutdown) while it still answers: the
   * audit reads its session journal one last time. Default: none. A failure is logged and the
   * stop goes on.
   */
  beforeRemove?: (handle: ProxyHandle, reason: StopReason) => Promise<void>;
  /** PROXY_MAX: most proxies at once; a new user past it gets 503 `capacity`. Default: no cap. */
  maxProxies?: number;
  /** Charged for every proxy made for a user (PROXY_START_RATE_PER_MINUTE); throws 429 when spent. Default: none. */
  startBudget?: { charge(ownerHash: string): Promise<void> };
  /** Serialises one owner's start and stop across api-backend replicas (replica-lock.ts). Default: this process only. */
  replicaLock?: ReplicaLock;
}

/** Proxies the idle sweep looks at at once. */
const SWEEP_CONCURRENCY = 8;
/** What a user turned away for capacity is told to wait: proxies free up as users stop or idle out. */
const CAPACITY_RETRY_AFTER_S = 60;

export interface ProxyStatusView {
  status: 'running' | 'starting' | 'stopped' | 'not-found';
  driver: string;
  owner: string;
  startedAt?: string;
  desktop?: { connected: boolean; transport: 'ws' | 'poll' | 'zrok' | null; clients: string[]; target?: TargetHealth | null; rtt?: TunnelRtt | null };
  activeRequests?: number;
  requests?: number;
  lastActivityAt?: string;
}

export interface ManagerEvents {
  started: [{ ownerHash: string; proxyId: string; driver: string; durationMs: number; startedAt: Date }];
  /** startedAt is unset only for a proxy that died on its own (the driver no longer knows it). */
  stopped: [{ ownerHash: string; proxyId: string; driver: string; reason: StopReason; startedAt?: Date; stats?: ProxyStatus }];
  /** A create that failed (not one refused by the start budget): what the start-failure alert counts. */
  startFailed: [{ ownerHash: string; driver: string }];
  /** The idle sweep read every running proxy: `statuses` of those that answered (the operator's chart samples it). */
  swept: [{ at: Date; running: number; statuses: ProxyStatus[] }];
}

export class StreamingProxyManager extends EventEmitter<ManagerEvents> {
  private readonly lock = new KeyedLock();
  /** Set by close(): a proxy made during shutdown would outlive it (or race the next api-backend). */
  private closing = false;
  /** Owners whose proxy this manager is creating now: counted against PROXY_MAX before the driver lists them. */
  private readonly creating = new Set<string>();

  constructor(
    readonly driver: ProxyDriver,
    private readonly client: ProxyClient,
    private readonly options: ManagerOptions,
    private readonly logger: Logger,
  ) {
    super();
  }

  /** Ensures the user's proxy runs; idempotent. */
  ensure(userId: string): Promise<{ handle: ProxyHandle; created: boolean }> {
    const ownerHash = userHash(userId);
    return this.lock.run(ownerHash, async () => {
      // The fast path: a running proxy needs no word with the other replicas.
      const running = await this.driver.inspect(ownerHash);
      if (running?.state === 'running') return { handle: running, created: false };
      // Under the replica lock it is looked up again: another replica may have made it meanwhile.
      return this.acrossReplicas(ownerHash, () => this.create(ownerHash, this.options.replicaLock ? undefined : running));
    });
  }

  /** Makes the owner's proxy unless (under the replica lock) another replica just did; `seen` is a fresh inspect, if any. */
  private async create(ownerHash: string, seen?: ProxyHandle | null): Promise<{ handle: ProxyHandle; created: boolean }> {
    const existing = seen !== undefined ? seen : await this.driver.inspect(ownerHash);
    if (existing?.state === 'running') return { handle: existing, created: false };
    if (this.closing) throw new ServiceUnavailableError('the relay is shutting down; try again in a moment', 'shutting_down');
    if (existing) await this.driver.remove(ownerHash); // a half-made or dead one
    const releasePlace = await this.admitNewProxy(ownerHash);
    const began = Date.now();
    try {
      await this.options.startBudget?.charge(ownerHash);
      this.logger.info('StreamingProxy starting', { owner: ownerHash, driver: this.driver.name });
      const handle = await this.driver.create(ownerHash);
      const durationMs = Date.now() - began;
      this.logger.info('StreamingProxy started', { owner: ownerHash, proxy: handle.id, durationMs });
      this.emit('started', { ownerHash, proxyId: handle.id, driver: this.driver.name, durationMs, startedAt: handle.createdAt });
      return { handle, created: true };
    } catch (error) {
      if (!(error instanceof RateLimitedError)) {
        this.logger.error('StreamingProxy failed to start', { owner: ownerHash, error: (error as Error).message });
        this.emit('startFailed', { ownerHash, driver: this.driver.name });
      }
      throw error;
    } finally {
      this.creating.delete(ownerHash);
      await releasePlace().catch((error: Error) => this.logger.warn('StreamingProxy capacity place not released', { owner: ownerHash, error: error.message }));
    }
  }

  /**
   * Holds a place for one more proxy, or refuses with `capacity` when PROXY_MAX run or are being
   * made. Starts of other users run meanwhile (the lock is per user), so the ones in flight count
   * as well as what the driver lists; the check and the reservation happen in one tick. With
   * several replicas, the starts other replicas have in flight count too, and no two replicas
   * check at once (replica-lock.ts). Resolves with the release of the place, for when the create
   * has ended (the engine then lists the proxy, if it was made).
   */
  private async admitNewProxy(ownerHash: string): Promise<() => Promise<void>> {
    const max = this.options.maxProxies;
    if (max === undefined) return async () => undefined;
    const admit = async (heldElsewhere: ReadonlySet<number>) => {
      const owners = new Set((await this.driver.list()).map((handle) => handle.ownerHash));
      for (const owner of this.creating) owners.add(owner);
      owners.delete(ownerHash);
      const ours = new Set([...owners, ownerHash].map(ownerKey));
      const proxies = owners.size + [...heldElsewhere].filter((key) => !ours.has(key)).length;
      if (proxies >= max) {
        this.logger.warn('StreamingProxy refused: at capacity', { owner: ownerHash, proxies, max });
        throw new CapacityError(`the relay is at capacity (${max} proxies); try later or ask the operator to raise PROXY_MAX`, {
          retryAfterSeconds: CAPACITY_RETRY_AFTER_S,
        });
      }
      this.creating.add(ownerHash);
    };
    if (this.options.replicaLock) return this.options.replicaLock.reserve(ownerHash, admit);
    await admit(new Set());
    return async () => undefined;
  }

  /** Stops the user's proxy; resolves false when there was none. */
  stop(userId: string, reason: StopReason): Promise<boolean> {
    return this.stopOwner(userHash(userId), reason);
  }

  /**
   * Stops a proxy named by its owner hash: the operator's view knows users only by hash. Resolves
   * false when there was none.
   */
  stopOwnerHash(ownerHash: string, reason: StopReason): Promise<boolean> {
    return this.stopOwner(ownerHash, reason);
  }

  /** Where to reach the user's running proxy, or null if none runs. Never starts one. */
  endpoint(userId: string): Promise<ProxyEndpoint | null> {
    return this.driver.endpoint(userHash(userId));
  }

  /** The user's proxy could not be reached at its endpoint: look it up anew next time. */
  endpointFailed(userId: string): void {
    this.driver.forgetEndpoint(userHash(userId));
  }

  async status(userId: string): Promise<ProxyStatusView> {
    const ownerHash = userHash(userId);
    const handle = await this.driver.inspect(ownerHash);
    const base = { driver: this.driver.name, owner: ownerHash };
    if (!handle) return { status: 'not-found', ...base };
    if (handle.state !== 'running' || !handle.endpoint) {
      return { status: handle.state, startedAt: handle.createdAt.toISOString(), ...base };
    }
    const stats = await this.client.status(handle.endpoint).catch(() => undefined);
    return {
      status: 'running',
      ...base,
      startedAt: handle.createdAt.toISOString(),
      desktop: {
        connected: (stats?.desktops.length ?? 0) > 0,
        transport: stats?.transport ?? null,
        clients: stats?.desktops.map((d) => d.client) ?? [],
        target: stats?.target ?? null,
        rtt: stats?.rtt ?? null,
      },
      activeRequests: stats?.activeRequests,
      requests: stats?.requests,
      lastActivityAt: stats?.lastActivityAt,
    };
  }

  /**
   * Stops every proxy that has been idle past the timeout; returns how many. A few proxies are
   * looked at at once, and one that fails (its status, inspect or removal) is logged and skipped:
   * the sweep goes on for everyone after it.
   */
  async sweep(now = Date.now()): Promise<number> {
    const running = (await this.driver.list()).filter((handle) => handle.state === 'running' && handle.endpoint);
    const statuses: ProxyStatus[] = [];
    const culled = await mapLimit(running, SWEEP_CONCURRENCY, async (handle) => {
      try {
        const stats = await this.client.status(handle.endpoint!).catch(() => undefined);
        if (!stats) return false; // unreachable now; the driver reports real deaths
        statuses.push(stats);
        const idleFor = now - Date.parse(stats.lastActivityAt);
        if (stats.desktops.length > 0 || stats.activeRequests > 0 || idleFor < this.options.idleTimeoutMs) return false;
        this.logger.info('StreamingProxy idle; culling', { owner: handle.ownerHash, idleForMs: idleFor });
        return await this.stopOwner(handle.ownerHash, 'idle', true);
      } catch (error) {
        this.logger.warn('StreamingProxy idle check failed; the sweep goes on', { owner: handle.ownerHash, error: (error as Error).message });
        return false;
      }
    });
    this.emit('swept', { at: new Date(), running: running.length, statuses });
    return culled.filter(Boolean).length;
  }

  /** A driver saw a proxy die on its own (`proxyId`: the container, when the driver named it). */
  proxyDied(ownerHash: string, detail: string, proxyId = 'unknown'): void {
    this.logger.warn('StreamingProxy exited unexpectedly', { owner: ownerHash, detail });
    this.emit('stopped', { ownerHash, proxyId, driver: this.driver.name, reason: 'error' });
  }

  /** A proxy that fails to stop is logged and the others still stop (then close rejects); the driver is closed whatever happened. */
  async close(): Promise<void> {
    this.closing = true;
    try {
      const handles = await this.driver.list();
      if (this.driver.outlivesRelay) {
        this.logger.info('StreamingProxy left running for the next api-backend to adopt', { proxies: handles.length, driver: this.driver.name });
        return;
      }
      const results = await Promise.allSettled(handles.map((handle) => this.stopOwner(handle.ownerHash, 'shutdown')));
      results.forEach((result, i) => {
        if (result.status === 'rejected') {
          this.logger.error('StreamingProxy failed to stop at shutdown', { owner: handles[i].ownerHash, error: (result.reason as Error).message });
        }
      });
      const failed = results.filter((result) => result.status === 'rejected').length;
      if (failed > 0) throw new Error(`${failed} of ${handles.length} proxies failed to stop`);
    } finally {
      await this.driver.close();
    }
  }

  /** Runs `work` while no other replica starts or stops this owner's proxy (a no-op with one replica). */
  private acrossReplicas<T>(ownerHash: string, work: () => Promise<T>): Promise<T> {
    return this.options.replicaLock ? this.options.replicaLock.run(ownerHash, work) : work();
  }

  private stopOwner(ownerHash: string, reason: StopReason, onlyIfIdle = false): Promise<boolean> {
    return this.lock.run(ownerHash, () => this.acrossReplicas(ownerHash, async () => {
      const handle = await this.driver.inspect(ownerHash);
      if (!handle) return false;
      const stats = handle.endpoint ? await this.client.status(handle.endpoint, 1000).catch(() => undefined) : undefined;
      // A desktop may have connected between the sweep's look and now.
      if (onlyIfIdle && stats && (stats.desktops.length > 0 || stats.activeRequests > 0)) return false;
      await this.options.beforeRemove?.(handle, reason).catch((error: Error) =>
        this.logger.warn('StreamingProxy pre-removal hook failed', { owner: ownerHash, error: error.message }),
      );
      await this.driver.remove(ownerHash);
      this.logger.info('StreamingProxy stopped', { owner: ownerHash, proxy: handle.id, reason });
      this.emit('stopped', { ownerHash, proxyId: handle.id, driver: this.driver.name, reason, startedAt: handle.createdAt, stats });
      return true;
    }));
  }
}
