/**
 * The production driver: each user's streaming-proxy is a hardened container `ctll-proxy-<h>` on
 * its own network `ctll-net-<h>` (docker-spec.ts, docker-networks.ts), made through dockerode.
 *
 * The engine is the record of what exists. inspect and list read it every time; `endpoint`, asked
 * on every relayed request, may answer from a cache of it that container events, removes and
 * failed connections clear (endpoint-cache.ts); how many run, for /metrics and /health, comes
 * from a census of its own creates, removes, events and listings (proxy-census.ts), so no
 * anonymous request reaches the engine. Otherwise the driver keeps only what is true of
 * this process alone: which creates are in flight (shown as "starting"),
 * which exits it caused or already reported (exit-ledger.ts), and a per-owner lock so its own
 * background work (cleaning up a dead proxy, the sweep) never interleaves with a create or remove
 * for the same owner. `start()` reconciles with what a previous process left (docker-reconcile.ts)
 * and starts following the engine's events; the same reconcile runs every `sweepIntervalMs` and
 * whenever the event stream comes back, because events are only cues.
 *
 * A proxy counts as started once it answers GET /health from here (wait-healthy.ts). A proxy that
 * dies on its own is reported to `onExit` once, then removed with its network, which frees its
 * subnet; the user's next request provisions a new one. Engine failures become errors a person
 * can act on in docker-errors.ts, and nothing broken is cached: each call asks the engine anew,
 * so the driver recovers by itself when Docker comes back. Whether api-backend itself runs in a
 * container is found once, on first need (docker-placement.ts).
 *
 * Everything is labelled with PROXY_SCOPE, and every list, event filter and sweep is limited to
 * it, so api-backends sharing one engine (production and a test run) never touch each other's.
 */
import Docker from 'dockerode';
import type { DriverHealth, ProxyDriver, ProxyEndpoint, ProxyHandle } from './driver';
import { resolveDockerOptions, specOf, type DockerDriverOptions, type ResolvedDockerOptions } from './docker-driver-options';
import { KeyedLock } from './keyed-lock';
import { LABELS, containerName } from './naming';
import { SubnetPool } from './subnet-pool';
import { containerSpec, isOurs, managedFilter, SCOPE_LABEL, type ProxySpecOptions } from './docker-spec';
import { ProxyNetworks } from './docker-networks';
import { describePlacement, detectPlacement, type Placement } from './docker-placement';
import { DockerEventFollower, type ContainerEvent } from './docker-events';
import { planReconcile } from './docker-reconcile';
import { ExitLedger } from './exit-ledger';
import { EndpointCache } from './endpoint-cache';
import { ProxyCensus } from './proxy-census';
import { waitHealthy, NotHealthyError } from './wait-healthy';
import { createdOf, endpointOf, handleOf, removeContainer, whyNotRunning } from './docker-containers';
import { mapLimit } from './map-limit';
import { withTimeout } from './with-timeout';
import { classify, dockerMessage, dockerUnavailable, ignoringGone, imageMissing, startFailed, toRelayError } from './docker-errors';

export { DOCKER_DRIVER_DEFAULTS, type DockerDriverOptions } from './docker-driver-options';

/** Engine calls made at once during a sweep or list, so thousands of proxies do not mean thousands of sockets. */
const ENGINE_CONCURRENCY = 16;

export class DockerDriver implements ProxyDriver {
  readonly name = 'docker' as const;
  readonly outlivesRelay = true;
  readonly docker: Docker;
  private readonly options: ResolvedDockerOptions;
  private readonly spec: ProxySpecOptions;
  private readonly networks: ProxyNetworks;
  private readonly events: DockerEventFollower;
  private readonly lock = new KeyedLock();
  private readonly creating = new Set<string>();
  private readonly exits = new ExitLedger();
  private readonly endpoints: EndpointCache;
  private readonly census = new ProxyCensus();
  private readonly background = new Set<Promise<unknown>>();
  private placement?: Promise<Placement>;
  private readonly proxyFilter: { label: string[] };
  private startedAt = Date.now();
  private sweepTimer?: NodeJS.Timeout;

  constructor(options: DockerDriverOptions) {
    this.options = resolveDockerOptions(options);
    const o = this.options;
    this.docker = new Docker({ ...o.dockerOptions, timeout: o.apiTimeoutMs });
    this.proxyFilter = { label: managedFilter(o.scope, 'proxy') };
    this.spec = specOf(o);
    this.endpoints = new EndpointCache(o.endpointCacheMs);
    const pool = new SubnetPool(o.subnetPool, o.subnetPrefix);
    this.networks = new ProxyNetworks(this.docker, { pool, spec: this.spec, placement: () => this.where(), logger: o.logger });
    // The event stream has its own client: the API client's idle timeout would cut a quiet stream.
    this.events = new DockerEventFollower(new Docker(o.dockerOptions), {
      logger: o.logger,
      scope: o.scope,
      onEvent: (event) => this.onContainerEvent(event),
      onConnect: (gap) => {
        // Whatever happened while the stream was away is unknown: nothing cached is trusted.
        this.endpoints.clear();
        if (gap) this.inBackground(this.reconcile());
      },
    });
  }

  /** Adopts what a previous process left, then follows events and sweeps. Never throws for a missing engine. */
  async start(): Promise<void> {
    this.startedAt = Date.now();
    this.events.start();
    try {
      await this.reconcile();
    } catch (error) {
      this.options.logger.warn('StreamingProxy Docker reconcile at start-up failed; will retry when the engine answers', { error: dockerMessage(error) });
    }
    this.sweepTimer = setInterval(() => this.inBackground(this.reconcile()), this.options.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  create(ownerHash: string): Promise<ProxyHandle> {
    return this.lock.run(ownerHash, () => this.createLocked(ownerHash));
  }

  remove(ownerHash: string): Promise<void> {
    return this.lock.run(ownerHash, () => this.removeLocked(ownerHash)).catch((error) => {
      throw toRelayError(error, { action: `remove ${containerName(ownerHash)}`, image: this.options.image });
    });
  }

  async inspect(ownerHash: string): Promise<ProxyHandle | null> {
    try {
      const info = await this.inspectContainer(ownerHash);
      if (info) return this.toHandle(info);
      if (this.creating.has(ownerHash)) return { ownerHash, id: '', state: 'starting', createdAt: new Date() };
      const network = await this.networks.inspect(ownerHash);
      return network ? { ownerHash, id: network.Id, state: 'stopped', createdAt: createdOf(network.Labels, network.Created) } : null;
    } catch (error) {
      throw toRelayError(error, { action: `inspect ${containerName(ownerHash)}`, image: this.options.image });
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
      const [containers, networks] = await Promise.all([this.listContainers(), this.networks.list()]);
      const handles = await mapLimit(containers, ENGINE_CONCURRENCY, async (c): Promise<ProxyHandle | null> => {
        const ownerHash = c.Labels[LABELS.owner];
        // Only a running proxy's secret is needed, and only inspect shows the environment. The
        // listed container itself, by id; one that cannot be inspected is left out of this
        // listing, so one owner's trouble never fails the list (and every sweep) for everyone.
        if (c.State === 'running') {
          if (!ownerHash) return null;
          try {
            const info = await ignoringGone(() => this.docker.getContainer(c.Id).inspect());
            return info ? this.toHandle(info) : null;
          } catch (error) {
            this.options.logger.warn('StreamingProxy container not inspectable; left out of this listing', { owner: ownerHash, error: dockerMessage(error) });
            return null;
          }
        }
        return { ownerHash, id: c.Id, state: this.creating.has(ownerHash) ? 'starting' : 'stopped', createdAt: createdOf(c.Labels, c.Created * 1000) };
      });
      const owners = new Set(containers.map((c) => c.Labels[LABELS.owner]));
      const bare = networks
        .filter((n) => n.Labels?.[LABELS.owner] && !owners.has(n.Labels[LABELS.owner]))
        .map((n): ProxyHandle => ({ ownerHash: n.Labels![LABELS.owner], id: n.Id, state: this.creating.has(n.Labels![LABELS.owner]) ? 'starting' : 'stopped', createdAt: createdOf(n.Labels, n.Created) }));
      return [...handles.filter((h): h is ProxyHandle => h !== null), ...bare];
    } catch (error) {
      throw toRelayError(error, { action: 'list proxies', image: this.options.image });
    }
  }

  /** From what the driver has seen (census), never an engine call: /metrics and /health ask it. */
  running(): number {
    return this.census.size;
  }

  /** Asks the engine (three calls): the relay's health monitor calls it on its own timer, never per request. */
  async health(): Promise<DriverHealth> {
    try {
      await withTimeout(this.docker.ping(), this.options.healthTimeoutMs, `Docker engine did not answer within ${this.options.healthTimeoutMs} ms`);
      if (!(await ignoringGone(() => this.docker.getImage(this.options.image).inspect()))) return { ok: false, detail: imageMissing(this.options.image).message };
      const { self } = await this.where();
      if (self && !(await ignoringGone(() => this.docker.getContainer(self).inspect()))) {
        return { ok: false, detail: `api-backend runs in a container, but the engine has no container "${self}": set PROXY_SELF_CONTAINER, or PROXY_NETWORK_MODE=host` };
      }
      const events = this.events.connected ? 'events followed' : 'event stream reconnecting';
      return { ok: true, detail: `Docker engine answers; image ${this.options.image} present; ${this.census.size} proxy containers running; ${events}` };
    } catch (error) {
      return { ok: false, detail: classify(error) === 'unreachable' ? dockerUnavailable(error).message : dockerMessage(error) };
    }
  }

  async close(): Promise<void> {
    this.events.close();
    clearInterval(this.sweepTimer);
    await Promise.allSettled([...this.background]);
  }

  /** Compares the engine with what should be, and fixes the difference (see docker-reconcile.ts). */
  async reconcile(): Promise<void> {
    const [containers, networks] = await Promise.all([this.listContainers(), this.networks.list()]);
    const plan = planReconcile({
      containers,
      networks,
      now: Date.now(),
      startedAt: this.startedAt,
      halfMadeAfterMs: this.options.halfMadeAfterMs,
      busy: (ownerHash) => this.creating.has(ownerHash),
    });
    const { self } = await this.where();
    await mapLimit(plan.adopt, ENGINE_CONCURRENCY, ({ ownerHash }) =>
      // In container mode api-backend may be a new container that has not joined the network yet.
      self ? this.lock.run(ownerHash, async () => void (await this.networks.ensure(ownerHash))) : Promise.resolve(),
    );
    for (const { ownerHash, containerId, status } of plan.dead) this.reportExit(ownerHash, containerId, `container found ${status.toLowerCase()}`);
    await mapLimit(plan.halfMade, ENGINE_CONCURRENCY, (ownerHash) => this.lock.run(ownerHash, () => this.removeHalfMade(ownerHash)));
    if (plan.dead.length + plan.halfMade.length > 0 || plan.adopt.length > 0) {
      this.options.logger.info('StreamingProxy Docker reconcile', { adopted: plan.adopt.length, dead: plan.dead.length, halfMadeRemoved: plan.halfMade.length });
    }
  }

  private async createLocked(ownerHash: string): Promise<ProxyHandle> {
    this.creating.add(ownerHash);
    this.endpoints.forget(ownerHash);
    try {
      const existing = await this.inspectContainer(ownerHash);
      if (existing) {
        const adopted = await this.adoptOrDiscard(ownerHash, existing);
        if (adopted) return adopted;
      }
      const network = await this.networks.ensure(ownerHash);
      const secret = this.options.secretFor(ownerHash);
      const env = this.options.env(ownerHash, secret, network.backendAddress);
      const container = await this.docker.createContainer(containerSpec(ownerHash, network.subnet, env, this.spec));
      await ignoringGone(() => container.start());
      const info = await container.inspect();
      const endpoint = endpointOf(info);
      if (!endpoint) throw startFailed((await whyNotRunning(this.docker, info.Id)) ?? `container ${info.Name} has no address on ${network.name}`);
      await waitHealthy(endpoint.host, endpoint.port, { timeoutMs: this.options.startTimeoutMs, alive: () => whyNotRunning(this.docker, info.Id) });
      this.census.started(ownerHash, info.Id);
      return { ownerHash, id: info.Id, state: 'running', createdAt: createdOf(info.Config.Labels, info.Created), endpoint };
    } catch (error) {
      const mapped = error instanceof NotHealthyError ? startFailed(error.message, error) : toRelayError(error, { action: `create ${containerName(ownerHash)}`, image: this.options.image });
      await this.removeLocked(ownerHash).catch((cleanup: unknown) =>
        this.options.logger.warn('StreamingProxy could not clean up a failed start; the sweep will', { owner: ownerHash, error: dockerMessage(cleanup) }),
      );
      throw mapped;
    } finally {
      this.creating.delete(ownerHash);
    }
  }

  /** A container with the owner's name already exists (another replica, a previous process): use it if it serves, else clear it away. */
  private async adoptOrDiscard(ownerHash: string, info: Docker.ContainerInspectInfo): Promise<ProxyHandle | null> {
    const endpoint = info.State.Running ? endpointOf(info) : undefined;
    if (endpoint) {
      try {
        await this.networks.ensure(ownerHash);
        await waitHealthy(endpoint.host, endpoint.port, { timeoutMs: Math.min(this.options.startTimeoutMs, 3000), alive: () => whyNotRunning(this.docker, info.Id) });
        this.census.started(ownerHash, info.Id);
        return { ownerHash, id: info.Id, state: 'running', createdAt: createdOf(info.Config.Labels, info.Created), endpoint };
      } catch {
        // not serving: replaced below
      }
    }
    await this.removeLocked(ownerHash, { keepNetwork: true });
    return null;
  }

  private async removeLocked(ownerHash: string, options: { keepNetwork?: boolean } = {}): Promise<void> {
    this.endpoints.forget(ownerHash);
    this.census.ended(ownerHash);
    const info = await this.inspectContainer(ownerHash);
    if (info) {
      const container = this.docker.getContainer(info.Id);
      this.exits.expect(info.Id);
      if (info.State.Running) await ignoringGone(() => container.stop({ t: this.options.stopGraceSeconds }));
      await removeContainer(container);
    }
    if (!options.keepNetwork) await this.networks.remove(ownerHash);
  }

  private async removeHalfMade(ownerHash: string): Promise<void> {
    const info = await this.inspectContainer(ownerHash);
    if (info?.State.Running) return; // finished by someone after all
    await this.removeLocked(ownerHash);
  }

  private onContainerEvent(event: ContainerEvent): void {
    const ownerHash = event.ownerHash;
    if (ownerHash) {
      this.endpoints.forget(ownerHash);
      this.census.ended(ownerHash, event.containerId);
    }
    // A proxy dying while we start it fails that start; its caller hears of it, not onExit.
    if (!ownerHash || this.creating.has(ownerHash) || this.exits.isExpected(event.containerId)) return;
    const detail =
      event.action === 'oom'
        ? `killed: out of memory (PROXY_MEMORY_MB=${this.options.memoryMb})`
        : event.action === 'die'
          ? `container exited (code ${event.exitCode ?? 'unknown'})`
          : 'container removed outside api-backend';
    this.reportExit(ownerHash, event.containerId, detail);
  }

  /** Tells the manager once, then removes the dead proxy and its network (freeing the subnet). */
  private reportExit(ownerHash: string, containerId: string, detail: string): void {
    if (!this.exits.claimReport(containerId)) return;
    this.options.onExit(ownerHash, detail);
    this.inBackground(
      this.lock.run(ownerHash, async () => {
        const info = await this.inspectContainer(ownerHash);
        // A newer container means this one is gone already; the same one may still look running
        // right after an "oom" event, but it is on its way out.
        if (info && info.Id !== containerId) return;
        await this.removeLocked(ownerHash);
      }),
    );
  }

  /** The owner's container, if any; one another api-backend made under this name is never touched. */
  private async inspectContainer(ownerHash: string): Promise<Docker.ContainerInspectInfo | undefined> {
    const info = await ignoringGone(() => this.docker.getContainer(containerName(ownerHash)).inspect());
    if (info && !isOurs(info.Config.Labels, this.options.scope)) {
      throw new Error(`container ${containerName(ownerHash)} exists but was not made by this api-backend (PROXY_SCOPE=${info.Config.Labels?.[SCOPE_LABEL] ?? 'none'}); remove it`);
    }
    return info;
  }

  /** Where api-backend runs, found once; a failed look (engine away) is retried on the next call. */
  private where(): Promise<Placement> {
    this.placement ??= detectPlacement(this.docker, this.options.networkMode, this.options.selfContainer).then(
      (placement) => {
        this.options.logger.info(`StreamingProxy ${describePlacement(placement)}`);
        return placement;
      },
      (error: unknown) => {
        this.placement = undefined;
        throw error;
      },
    );
    return this.placement;
  }

  /** Every proxy container of this scope; the running ones also tell the census. */
  private async listContainers(): Promise<Docker.ContainerInfo[]> {
    const since = this.census.beginListing();
    try {
      const containers = await this.docker.listContainers({ all: true, filters: this.proxyFilter });
      const running = containers.filter((c) => c.State === 'running' && c.Labels[LABELS.owner]);
      this.census.listed(since, running.map((c) => ({ ownerHash: c.Labels[LABELS.owner], containerId: c.Id })));
      return containers;
    } catch (error) {
      this.census.listingFailed();
      throw error;
    }
  }

  private toHandle(info: Docker.ContainerInspectInfo): ProxyHandle {
    const ownerHash = info.Config.Labels?.[LABELS.owner] ?? '';
    return handleOf(info, ownerHash, this.creating.has(ownerHash));
  }

  private inBackground(work: Promise<unknown>): void {
    const tracked = work.catch((error: unknown) => this.options.logger.warn('StreamingProxy Docker background work failed', { error: dockerMessage(error) }));
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }
}
