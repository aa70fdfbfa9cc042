/**
 * What the docker and swarm drivers do alike, around the one thing that differs: what a user's
 * proxy is in the engine (a container, or a service with one task). Both keep the engine as the
 * record of what exists and hold only what is true of this process alone: which creates are in
 * flight (shown as "starting"), which exits it caused or already reported (exit-ledger.ts), a
 * per-owner lock so background work (cleaning up a dead proxy, the sweep) never interleaves with
 * a create or remove for the same owner, the endpoint cache that events, removes and failed
 * connections clear (endpoint-cache.ts), and the census of running proxies (proxy-census.ts).
 *
 * `start()` reconciles with what a previous process left (reconcile.ts) and follows the engine's
 * events (events.ts: task containers carry the same labels, so one follower serves both); the same
 * reconcile runs every `sweepIntervalMs` and whenever the event stream comes back, because events
 * are only cues. A proxy that dies on its own is reported to `onExit` once, then removed with its
 * network, which frees its subnet. One that another replica (or an operator) stops is no news: the
 * engine's `kill` event with the graceful stop signal comes before its `die` (exit-ledger.ts); one
 * stopped so but still there a sweep later (no replica, which removes what it stops) is reported then.
 * A running proxy whose protocol label is not this api-backend's is retired, not used (reconcile.ts).
 */
import Docker from 'dockerode';
import type { DriverHealth, ProxyDriver, ProxyEndpoint, ProxyHandle } from '../driver';
import { KeyedLock } from '../keyed-lock';
import { LABELS, containerName } from '../naming';
import { ExitLedger } from '../exit-ledger';
import { EndpointCache } from '../endpoint-cache';
import { ProxyCensus } from '../proxy-census';
import { waitHealthy, NotHealthyError } from '../wait-healthy';
import { mapLimit } from '../map-limit';
import { createdOf } from './containers';
import { dockerMessage, startFailed, toRelayError } from './errors';
import { DockerEventFollower, type ContainerEvent } from './events';
import type { ProxyNetworks } from './networks';
import type { Placement } from './placement';
import type { ResolvedDockerOptions } from './options';
import { planReconcile, speaksOurProtocol, type ReconcilePlan } from './reconcile';
import { PROTOCOL_VERSION } from '@ctll/protocol';

/** Engine calls made at once during a sweep or list, so thousands of proxies do not mean thousands of sockets. */
export const ENGINE_CONCURRENCY = 16;

/** The signal a stop sends first (the image keeps Docker's default STOPSIGNAL), as `kill` events name it. */
const GRACEFUL_STOP_SIGNALS = new Set(['15', 'SIGTERM', 'TERM']);

/** A proxy the engine already has, as far as adopting it needs. */
export interface ExistingProxy {
  id: string;
  /** The container that serves (for swarm, the current task's), set only while it runs: what the census counts. */
  containerId?: string;
  createdAt: Date;
  /** Its labels: the protocol label says whether it may be adopted. */
  labels: Record<string, string> | undefined;
  /** Where it listens, when it runs and can be reached; asked after api-backend joined its network. */
  endpoint: () => Promise<ProxyEndpoint | undefined>;
  /** Why it is not running (for waitHealthy), or null while it is. */
  alive: () => Promise<string | null>;
}

/** The words the two drivers put in logs and errors. */
export interface EngineWords {
  /** "Docker" or "swarm", in log lines. */
  engine: string;
  /** Before a proxy's name in an error's action: "" (a container) or "service ". */
  action: string;
  /** What died, in an exit report: "container" or "task container". */
  container: string;
  /** How reconcile found a dead proxy, from its listed status. */
  foundDead: (status: string) => string;
}

export abstract class EngineDriver implements ProxyDriver {
  abstract readonly name: 'docker' | 'swarm';
  readonly outlivesRelay = true;
  readonly docker: Docker;
  protected readonly options: ResolvedDockerOptions;
  protected abstract readonly networks: ProxyNetworks;
  protected readonly events: DockerEventFollower;
  protected readonly lock = new KeyedLock();
  protected readonly creating = new Set<string>();
  protected readonly exits = new ExitLedger();
  protected readonly endpoints: EndpointCache;
  protected readonly census = new ProxyCensus();
  private readonly background = new Set<Promise<unknown>>();
  private sweepTimer?: NodeJS.Timeout;

  constructor(
    options: ResolvedDockerOptions,
    private readonly words: EngineWords,
  ) {
    this.options = options;
    this.docker = new Docker({ ...options.dockerOptions, timeout: options.apiTimeoutMs });
    this.endpoints = new EndpointCache(options.endpointCacheMs);
    // The event stream has its own client: the API client's idle timeout would cut a quiet stream.
    this.events = new DockerEventFollower(new Docker(options.dockerOptions), {
      logger: options.logger,
      scope: options.scope,
      onEvent: (event) => this.onContainerEvent(event),
      onConnect: (gap) => {
        // Whatever happened while the stream was away is unknown: nothing cached is trusted.
        this.endpoints.clear();
        if (gap) this.inBackground(this.reconcile());
      },
    });
  }

  // ----- what each engine does its own way ----------------------------------------------------

  /** The owner's proxy as a handle, or null when the engine has none (its network aside). */
  protected abstract inspectProxy(ownerHash: string): Promise<ProxyHandle | null>;
  /** Every proxy of this scope as handles, and the owners the engine holds a proxy for. */
  protected abstract listProxies(): Promise<{ handles: ProxyHandle[]; owners: Set<string | undefined> }>;
  /** Every proxy of this scope in the container listing's shape, which reconcile plans from. */
  protected abstract listAsContainers(): Promise<Docker.ContainerInfo[]>;
  /** The owner's existing proxy, for adopting it, or undefined. */
  protected abstract findExisting(ownerHash: string): Promise<ExistingProxy | undefined>;
  /** Makes the owner's proxy on its network and waits until it answers; on failure the caller removes what it left. */
  protected abstract provision(ownerHash: string): Promise<ProxyHandle>;
  /** Removes the owner's proxy (not its network), marking its containers' exits as expected. */
  protected abstract removeProxy(ownerHash: string): Promise<void>;
  /** Whether the owner's proxy runs now (a half-made one was finished by someone after all). */
  protected abstract isRunning(ownerHash: string): Promise<boolean>;
  /** Whether the owner's proxy was replaced since `containerId` died, so the new one must stay. */
  protected abstract replacedSince(ownerHash: string, containerId: string): Promise<boolean>;
  /** Where api-backend runs (placement.ts), found once. */
  protected abstract where(): Promise<Placement>;
  abstract health(): Promise<DriverHealth>;

  /** Removes the owner's network; swarm overrides it to wait for the overlay to go. */
  protected async removeNetwork(ownerHash: string): Promise<void> {
    await this.networks.remove(ownerHash);
  }

  // ----- the driver interface -----------------------------------------------------------------

  /** Adopts what a previous process left, then follows events and sweeps. Never throws for a missing engine. */
  async start(): Promise<void> {
    this.events.start();
    try {
      await this.reconcile();
    } catch (error) {
      this.options.logger.warn(`StreamingProxy ${this.words.engine} reconcile at start-up failed; will retry when the engine answers`, { error: dockerMessage(error) });
    }
    this.sweepTimer = setInterval(() => this.inBackground(this.reconcile()), this.options.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  create(ownerHash: string): Promise<ProxyHandle> {
    return this.lock.run(ownerHash, () => this.createLocked(ownerHash));
  }

  remove(ownerHash: string): Promise<void> {
    return this.lock.run(ownerHash, () => this.removeLocked(ownerHash)).catch((error) => {
      throw this.relayError(error, 'remove', ownerHash);
    });
  }

  async inspect(ownerHash: string): Promise<ProxyHandle | null> {
    try {
      const handle = await this.inspectProxy(ownerHash);
      // Another replica may have started it: join its network before anyone here uses the endpoint.
      if (handle?.state === 'running' && !this.creating.has(ownerHash)) await this.networks.join(ownerHash);
      if (handle) return handle;
      if (this.creating.has(ownerHash)) return { ownerHash, id: '', state: 'starting', createdAt: new Date() };
      const network = await this.networks.inspect(ownerHash);
      return network ? { ownerHash, id: network.Id, state: 'stopped', createdAt: createdOf(network.Labels, network.Created) } : null;
    } catch (error) {
      throw this.relayError(error, 'inspect', ownerHash);
    }
  }

  async endpoint(ownerHash: string): Promise<ProxyEndpoint | null> {
    // Without the event stream a dead proxy would go unnoticed until the entry expires.
    const cached = this.events.connected ? this.endpoints.get(ownerHash) : undefined;
    if (cached) return cached;
    return this.endpoints.through(ownerHash, async () => {
      const handle = await this.inspect(ownerHash);
      return handle?.state === 'running' && handle.endpoint ? handle.endpoint : null;
    });
  }

  forgetEndpoint(ownerHash: string): void {
    this.endpoints.forget(ownerHash);
  }

  async list(): Promise<ProxyHandle[]> {
    try {
      const [{ handles, owners }, networks] = await Promise.all([this.listProxies(), this.networks.list()]);
      // A network without its proxy: a start in flight, or what a failed one left.
      const bare = networks
        .filter((n) => n.Labels?.[LABELS.owner] && !owners.has(n.Labels[LABELS.owner]))
        .map((n): ProxyHandle => ({ ownerHash: n.Labels![LABELS.owner], id: n.Id, state: this.creating.has(n.Labels![LABELS.owner]) ? 'starting' : 'stopped', createdAt: createdOf(n.Labels, n.Created) }));
      return [...handles, ...bare];
    } catch (error) {
      throw toRelayError(error, { action: 'list proxies', image: this.options.image });
    }
  }

  /** From what the driver has seen (census), never an engine call: /metrics and /health ask it. */
  running(): number {
    return this.census.size;
  }

  async close(): Promise<void> {
    this.events.close();
    clearInterval(this.sweepTimer);
    await Promise.allSettled([...this.background]);
  }

  /** Compares the engine with what should be, and fixes the difference (see reconcile.ts). */
  async reconcile(): Promise<void> {
    const [containers, networks] = await Promise.all([this.censusListing(), this.networks.list()]);
    const plan = planReconcile({
      containers,
      networks,
      now: Date.now(),
      halfMadeAfterMs: this.options.halfMadeAfterMs,
      busy: (ownerHash) => this.creating.has(ownerHash),
    });
    const { self } = await this.where();
    await mapLimit(plan.adopt, ENGINE_CONCURRENCY, ({ ownerHash }) =>
      // In container mode api-backend may be a new container that has not joined the network yet.
      self ? this.lock.run(ownerHash, async () => void (await this.networks.ensure(ownerHash))) : Promise.resolve(),
    );
    await mapLimit(plan.retire, ENGINE_CONCURRENCY, (old) => this.lock.run(old.ownerHash, () => this.retire(old)));
    const stoppedBefore = Date.now() - this.options.halfMadeAfterMs;
    for (const { ownerHash, containerId, status } of plan.dead) {
      if (this.exits.claimLateReport(containerId, stoppedBefore)) {
        // Stopped gracefully by someone who had time to remove it and did not: not a replica.
        this.options.onExit(ownerHash, `${this.words.container} stopped outside api-backend`, containerId);
        this.removeDead(ownerHash, containerId);
      } else {
        this.reportExit(ownerHash, containerId, this.words.foundDead(status));
      }
    }
    await mapLimit(plan.halfMade, ENGINE_CONCURRENCY, (ownerHash) => this.lock.run(ownerHash, () => this.removeHalfMade(ownerHash)));
    if (plan.dead.length + plan.halfMade.length + plan.adopt.length + plan.retire.length > 0) {
      this.options.logger.info(`StreamingProxy ${this.words.engine} reconcile`, {
        adopted: plan.adopt.length,
        retired: plan.retire.length,
        dead: plan.dead.length,
        halfMadeRemoved: plan.halfMade.length,
      });
    }
  }

  // ----- shared steps -------------------------------------------------------------------------

  /** Every proxy in the listing's shape; the running ones also tell the census. */
  protected async censusListing(): Promise<Docker.ContainerInfo[]> {
    const since = this.census.beginListing();
    try {
      const containers = await this.listAsContainers();
      const running = containers.filter((c) => c.State === 'running' && c.Labels[LABELS.owner]);
      this.census.listed(since, running.map((c) => ({ ownerHash: c.Labels[LABELS.owner], containerId: c.Id })));
      return containers;
    } catch (error) {
      this.census.listingFailed();
      throw error;
    }
  }

  protected async removeLocked(ownerHash: string, options: { keepNetwork?: boolean } = {}): Promise<void> {
    this.endpoints.forget(ownerHash);
    this.census.ended(ownerHash);
    await this.removeProxy(ownerHash);
    if (!options.keepNetwork) await this.removeNetwork(ownerHash);
  }

  protected relayError(error: unknown, verb: string, ownerHash: string): Error {
    return toRelayError(error, { action: `${verb} ${this.words.action}${containerName(ownerHash)}`, image: this.options.image });
  }

  protected inBackground(work: Promise<unknown>): void {
    const tracked = work.catch((error: unknown) => this.options.logger.warn(`StreamingProxy ${this.words.engine} background work failed`, { error: dockerMessage(error) }));
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }

  private async createLocked(ownerHash: string): Promise<ProxyHandle> {
    this.creating.add(ownerHash);
    this.endpoints.forget(ownerHash);
    try {
      const existing = await this.findExisting(ownerHash);
      if (existing) {
        const adopted = await this.adoptOrDiscard(ownerHash, existing);
        if (adopted) return adopted;
      }
      return await this.provision(ownerHash);
    } catch (error) {
      const mapped = error instanceof NotHealthyError ? startFailed(error.message, error) : this.relayError(error, 'create', ownerHash);
      await this.removeLocked(ownerHash).catch((cleanup: unknown) =>
        this.options.logger.warn('StreamingProxy could not clean up a failed start; the sweep will', { owner: ownerHash, error: dockerMessage(cleanup) }),
      );
      throw mapped;
    } finally {
      this.creating.delete(ownerHash);
    }
  }

  /** The owner's proxy exists already (another replica, a previous process): use it if it serves, else clear it away. */
  private async adoptOrDiscard(ownerHash: string, existing: ExistingProxy): Promise<ProxyHandle | null> {
    // One of another protocol version (or made before the label) is replaced, as the sweep would retire it.
    if (existing.containerId && speaksOurProtocol(existing.labels)) {
      try {
        await this.networks.ensure(ownerHash);
        const endpoint = await existing.endpoint();
        if (endpoint) {
          // As long as a start may take: a running proxy slow to answer (a loaded host) carries
          // its user's desktops, and replacing it would cut them; a dead one fails `alive` at once.
          await waitHealthy(endpoint.host, endpoint.port, { timeoutMs: this.options.startTimeoutMs, alive: existing.alive });
          this.census.started(ownerHash, existing.containerId);
          return { ownerHash, id: existing.id, state: 'running', createdAt: existing.createdAt, endpoint };
        }
      } catch {
        // not serving: replaced below
      }
    }
    await this.removeLocked(ownerHash, { keepNetwork: true });
    return null;
  }

  /** Removes a running proxy of an older protocol version; the owner's next request starts a fresh one. */
  private async retire({ ownerHash, containerId, protocol }: ReconcilePlan['retire'][number]): Promise<void> {
    // Under the lock no create of ours is in flight; one (ours or another replica's) may have replaced it meanwhile.
    if (this.creating.has(ownerHash) || (await this.replacedSince(ownerHash, containerId))) return;
    this.options.logger.warn(
      `StreamingProxy retired a ${this.words.container} of an older api-backend/proxy protocol version; the user's next request starts a fresh one from ${this.options.image}. ` +
        'It was left by an older api-backend or made from an older image: keep PROXY_IMAGE at the release of api-backend',
      { owner: ownerHash, labelled: protocol ?? 'none (made before protocol labels)', expected: PROTOCOL_VERSION },
    );
    await this.removeLocked(ownerHash);
  }

  private async removeHalfMade(ownerHash: string): Promise<void> {
    if (await this.isRunning(ownerHash)) return; // finished by someone after all
    await this.removeLocked(ownerHash);
  }

  private onContainerEvent(event: ContainerEvent): void {
    if (event.action === 'kill') {
      // A stop, by this process or another replica sharing the engine: its die and destroy are no news.
      if (event.signal !== undefined && GRACEFUL_STOP_SIGNALS.has(event.signal)) this.exits.stopSeen(event.containerId);
      return;
    }
    const ownerHash = event.ownerHash;
    if (ownerHash) {
      this.endpoints.forget(ownerHash);
      this.census.ended(ownerHash, event.containerId);
    }
    // A proxy dying while we start it fails that start; its caller hears of it, not onExit.
    if (!ownerHash || this.creating.has(ownerHash) || this.exits.isExpected(event.containerId)) return;
    const what = this.words.container;
    const detail =
      event.action === 'oom'
        ? `killed: out of memory (PROXY_MEMORY_MB=${this.options.memoryMb})`
        : event.action === 'die'
          ? `${what} exited (code ${event.exitCode ?? 'unknown'})`
          : `${what} removed outside api-backend`;
    this.reportExit(ownerHash, event.containerId, detail);
  }

  /** Tells the manager once, then removes the dead proxy and its network (freeing the subnet). */
  private reportExit(ownerHash: string, containerId: string, detail: string): void {
    if (!this.exits.claimReport(containerId)) return;
    this.options.onExit(ownerHash, detail, containerId);
    this.removeDead(ownerHash, containerId);
  }

  /** Removes a dead proxy and its network in the background, unless the owner has a newer one. */
  private removeDead(ownerHash: string, containerId: string): void {
    this.inBackground(
      this.lock.run(ownerHash, async () => {
        if (await this.replacedSince(ownerHash, containerId)) return;
        await this.removeLocked(ownerHash);
      }),
    );
  }
}
