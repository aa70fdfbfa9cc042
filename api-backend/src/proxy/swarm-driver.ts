/**
 * PROXY_DRIVER=swarm: each user's streaming-proxy is a swarm service `ctll-proxy-<h>` (one
 * replica, restart condition none) on an attachable overlay `ctll-net-<h>` with a subnet from the
 * same pool as the docker driver (swarm-spec.ts). The manager sees no difference: the same
 * states, the same endpoint cache, the same exit reports, the same reconcile rules
 * (docker-reconcile.ts over services mapped by swarm-tasks.ts), the same labels and scope.
 * api-backend talks to a swarm manager's engine.
 *
 * How api-backend reaches a task. An overlay's addresses live in the overlay's own namespace:
 * the host has no interface there and no route to them (a packet for one leaves by the host's
 * default route, off the machine). So:
 * - `container` mode (production): api-backend is a plain container (docker compose on a
 *   manager) and joins each user's overlay, which is attachable for this reason, exactly as the
 *   docker driver joins each bridge (docker-networks.ts attach). It reaches the task at its overlay
 *   address on any node. (A swarm *task* cannot join an overlay after it started: the engine
 *   answers "network not found", so api-backend must not itself be a swarm service.)
 * - `host` mode (a host process: tests, a one-node swarm): every task on a non-internal overlay
 *   also has a leg on the node's `docker_gwbridge`, a plain bridge the host is on. api-backend
 *   reaches the task there, and the proxy reaches api-backend at that bridge's gateway. Only tasks
 *   on this node have such a leg, so host mode pins proxies to this node (`node.id==` constraint),
 *   and it needs PROXY_EGRESS=internet (an internal overlay has no gwbridge leg). docker_gwbridge
 *   keeps inter-container traffic off (enable_icc=false), so users stay apart on it as well.
 * Publishing the proxy port instead is no option: swarm publishes on every address of every node
 * (the routing mesh, or host mode on 0.0.0.0), which would put each proxy on the public interface.
 *
 * Tasks are started from the local image by id, never pulled: the engine tries a registry pull for
 * any tag, and skips it only for an image id. Every node that may run proxies needs the image.
 *
 * Events: task containers carry the proxy labels, so the docker driver's event follower reports
 * their deaths on this node; the periodic sweep finds the rest (tasks on other nodes, missed events).
 */
import Docker from 'dockerode';
import type { DriverHealth, ProxyDriver, ProxyEndpoint, ProxyHandle } from './driver';
import { resolveDockerOptions, specOf, type DockerDriverOptions, type ResolvedDockerOptions } from './docker-driver-options';
import { KeyedLock } from './keyed-lock';
import { LABELS, containerName } from './naming';
import { SubnetPool } from './subnet-pool';
import { ProxyNetworks } from './docker-networks';
import { DockerEventFollower, type ContainerEvent } from './docker-events';
import { planReconcile } from './docker-reconcile';
import { ExitLedger } from './exit-ledger';
import { EndpointCache } from './endpoint-cache';
import { ProxyCensus } from './proxy-census';
import { waitHealthy, NotHealthyError } from './wait-healthy';
import { createdOf } from './docker-containers';
import { mapLimit } from './map-limit';
import { withTimeout } from './with-timeout';
import { classify, dockerMessage, dockerUnavailable, ignoringGone, imageMissing, startFailed, toRelayError } from './docker-errors';
import { overlaySpec, serviceSpec, type ServiceSpecOptions } from './swarm-spec';
import { asContainers, containerIdOf, currentTask, phaseOf, type SwarmTask } from './swarm-tasks';
import { patiently, ProxyServices } from './swarm-services';
import { SwarmReach, type EndpointResolver } from './swarm-reach';

export interface SwarmDriverOptions extends DockerDriverOptions {
  /** Placement constraints of proxy services (PROXY_PLACEMENT). */
  placement?: string[];
}

const ENGINE_CONCURRENCY = 16;

export class SwarmDriver implements ProxyDriver {
  readonly name = 'swarm' as const;
  readonly outlivesRelay = true;
  readonly docker: Docker;
  private readonly options: ResolvedDockerOptions & { placement: string[] };
  private readonly spec: ServiceSpecOptions;
  private readonly networks: ProxyNetworks;
  private readonly events: DockerEventFollower;
  private readonly lock = new KeyedLock();
  private readonly creating = new Set<string>();
  private readonly exits = new ExitLedger();
  private readonly endpoints: EndpointCache;
  private readonly census = new ProxyCensus();
  private readonly background = new Set<Promise<unknown>>();
  private readonly services: ProxyServices;
  private readonly reach: SwarmReach;
  private startedAt = Date.now();
  private sweepTimer?: NodeJS.Timeout;

  constructor(options: SwarmDriverOptions) {
    this.options = { ...resolveDockerOptions(options), placement: options.placement ?? [] };
    const o = this.options;
    this.docker = new Docker({ ...o.dockerOptions, timeout: o.apiTimeoutMs });
    this.spec = { ...specOf(o), constraints: o.placement };
    this.services = new ProxyServices(this.docker, o.scope);
    this.endpoints = new EndpointCache(o.endpointCacheMs);
    this.reach = new SwarmReach(this.docker, { networkMode: o.networkMode, selfContainer: o.selfContainer, logger: o.logger });
    this.networks = new ProxyNetworks(this.docker, {
      pool: new SubnetPool(o.subnetPool, o.subnetPrefix),
      spec: this.spec,
      placement: () => this.reach.where(),
      logger: o.logger,
      body: (ownerHash, subnet) => overlaySpec(ownerHash, subnet, this.spec),
      hostAddress: () => this.reach.gwbridgeGateway(),
    });
    this.events = new DockerEventFollower(new Docker(o.dockerOptions), {
      logger: o.logger,
      scope: o.scope,
      onEvent: (event) => this.onContainerEvent(event),
      onConnect: (gap) => {
        this.endpoints.clear();
        if (gap) this.inBackground(this.reconcile());
      },
    });
  }

  async start(): Promise<void> {
    this.startedAt = Date.now();
    this.events.start();
    try {
      await this.reconcile();
    } catch (error) {
      this.options.logger.warn('StreamingProxy swarm reconcile at start-up failed; will retry when the engine answers', { error: dockerMessage(error) });
    }
    this.sweepTimer = setInterval(() => this.inBackground(this.reconcile()), this.options.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  create(ownerHash: string): Promise<ProxyHandle> {
    return this.lock.run(ownerHash, () => this.createLocked(ownerHash));
  }

  remove(ownerHash: string): Promise<void> {
    return this.lock.run(ownerHash, () => this.removeLocked(ownerHash)).catch((error) => {
      throw toRelayError(error, { action: `remove service ${containerName(ownerHash)}`, image: this.options.image });
    });
  }

  async inspect(ownerHash: string): Promise<ProxyHandle | null> {
    try {
      const service = await this.services.inspect(ownerHash);
      if (service) return this.toHandle(ownerHash, service, currentTask(await this.services.tasksOf(service.ID), service.ID), await this.reach.resolver());
      if (this.creating.has(ownerHash)) return { ownerHash, id: '', state: 'starting', createdAt: new Date() };
      const network = await this.networks.inspect(ownerHash);
      return network ? { ownerHash, id: network.Id, state: 'stopped', createdAt: createdOf(network.Labels, network.Created) } : null;
    } catch (error) {
      throw toRelayError(error, { action: `inspect service ${containerName(ownerHash)}`, image: this.options.image });
    }
  }

  async endpoint(ownerHash: string): Promise<ProxyEndpoint | null> {
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
      const [[services, tasks], networks] = await Promise.all([this.services.listWithTasks(), this.networks.list()]);
      const resolve = services.length > 0 ? await this.reach.resolver() : () => undefined;
      const handles = services.map((service) => {
        const ownerHash = service.Spec?.Labels?.[LABELS.owner];
        return ownerHash ? this.toHandle(ownerHash, service, currentTask(tasks, service.ID), resolve) : null;
      });
      const owners = new Set(services.map((s) => s.Spec?.Labels?.[LABELS.owner]));
      const bare = networks
        .filter((n) => n.Labels?.[LABELS.owner] && !owners.has(n.Labels[LABELS.owner]))
        .map((n): ProxyHandle => ({ ownerHash: n.Labels![LABELS.owner], id: n.Id, state: this.creating.has(n.Labels![LABELS.owner]) ? 'starting' : 'stopped', createdAt: createdOf(n.Labels, n.Created) }));
      return [...handles.filter((h): h is ProxyHandle => h !== null), ...bare];
    } catch (error) {
      throw toRelayError(error, { action: 'list proxies', image: this.options.image });
    }
  }

  running(): number {
    return this.census.size;
  }

  async health(): Promise<DriverHealth> {
    try {
      const info = await withTimeout(this.docker.info() as Promise<{ Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } }>, this.options.healthTimeoutMs, `Docker engine did not answer within ${this.options.healthTimeoutMs} ms`);
      if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) {
        return { ok: false, detail: 'PROXY_DRIVER=swarm needs a swarm manager: run `docker swarm init` (or point DOCKER_HOST at a manager)' };
      }
      if (!(await ignoringGone(() => this.docker.getImage(this.options.image).inspect()))) return { ok: false, detail: imageMissing(this.options.image).message };
      const events = this.events.connected ? 'events followed' : 'event stream reconnecting';
      return { ok: true, detail: `swarm manager answers; image ${this.options.image} present; ${this.census.size} proxy services running; ${events}` };
    } catch (error) {
      return { ok: false, detail: classify(error) === 'unreachable' ? dockerUnavailable(error).message : dockerMessage(error) };
    }
  }

  async close(): Promise<void> {
    this.events.close();
    clearInterval(this.sweepTimer);
    await Promise.allSettled([...this.background]);
  }

  /** The docker driver's rules (docker-reconcile.ts), read from service labels and tasks. */
  async reconcile(): Promise<void> {
    const since = this.census.beginListing();
    let services: Docker.Service[];
    let tasks: SwarmTask[];
    let networks: Docker.NetworkInspectInfo[];
    try {
      [[services, tasks], networks] = await Promise.all([this.services.listWithTasks(), this.networks.list()]);
    } catch (error) {
      this.census.listingFailed();
      throw error;
    }
    const containers = asContainers(services, tasks);
    this.census.listed(since, containers.filter((c) => c.State === 'running').map((c) => ({ ownerHash: c.Labels[LABELS.owner], containerId: c.Id })));
    const plan = planReconcile({
      containers,
      networks,
      now: Date.now(),
      startedAt: this.startedAt,
      halfMadeAfterMs: this.options.halfMadeAfterMs,
      busy: (ownerHash) => this.creating.has(ownerHash),
    });
    const { self } = await this.reach.where();
    await mapLimit(plan.adopt, ENGINE_CONCURRENCY, ({ ownerHash }) =>
      self ? this.lock.run(ownerHash, async () => void (await this.networks.ensure(ownerHash))) : Promise.resolve(),
    );
    for (const { ownerHash, containerId, status } of plan.dead) this.reportExit(ownerHash, containerId, `service found with its ${status}`);
    await mapLimit(plan.halfMade, ENGINE_CONCURRENCY, (ownerHash) => this.lock.run(ownerHash, () => this.removeHalfMade(ownerHash)));
    if (plan.dead.length + plan.halfMade.length > 0 || plan.adopt.length > 0) {
      this.options.logger.info('StreamingProxy swarm reconcile', { adopted: plan.adopt.length, dead: plan.dead.length, halfMadeRemoved: plan.halfMade.length });
    }
  }

  private async createLocked(ownerHash: string): Promise<ProxyHandle> {
    this.creating.add(ownerHash);
    this.endpoints.forget(ownerHash);
    try {
      const existing = await this.services.inspect(ownerHash);
      if (existing) {
        const adopted = await this.adoptOrDiscard(ownerHash, existing);
        if (adopted) return adopted;
      }
      const where = await this.reach.where();
      if (where.mode === 'host' && this.options.egress === 'none') {
        throw startFailed('PROXY_EGRESS=none makes user overlays internal, which a host process cannot reach: run api-backend in a container (PROXY_NETWORK_MODE=container) or use PROXY_EGRESS=internet');
      }
      // By id: the engine never tries a registry for an image id (see the header).
      const image = await ignoringGone(() => this.docker.getImage(this.options.image).inspect());
      if (!image) throw imageMissing(this.options.image);
      const network = await this.networks.ensure(ownerHash);
      const secret = this.options.secretFor(ownerHash);
      const env = this.options.env(ownerHash, secret, network.backendAddress);
      const constraints = [...this.options.placement, ...(where.mode === 'host' && where.nodeId ? [`node.id==${where.nodeId}`] : [])];
      const body = serviceSpec(ownerHash, { subnet: network.subnet, networkId: network.id, imageId: image.Id }, env, { ...this.spec, constraints });
      const created = (await this.docker.createService(body as unknown as Docker.CreateServiceOptions)) as unknown as { id?: string; ID?: string };
      const serviceId = created.id ?? created.ID ?? containerName(ownerHash);
      const task = await this.services.waitForTask(serviceId, this.options.startTimeoutMs);
      const endpoint = await this.reach.endpointOf(ownerHash, task);
      if (!endpoint) throw startFailed(`task ${task.ID} of ${containerName(ownerHash)} runs but has no address api-backend can reach`);
      await waitHealthy(endpoint.host, endpoint.port, { timeoutMs: this.options.startTimeoutMs, alive: () => this.services.whyNotRunning(serviceId) });
      this.census.started(ownerHash, containerIdOf(task) ?? task.ID);
      return { ownerHash, id: serviceId, state: 'running', createdAt: new Date(), endpoint };
    } catch (error) {
      const mapped = error instanceof NotHealthyError ? startFailed(error.message, error) : toRelayError(error, { action: `create service ${containerName(ownerHash)}`, image: this.options.image });
      await this.removeLocked(ownerHash).catch((cleanup: unknown) =>
        this.options.logger.warn('StreamingProxy could not clean up a failed start; the sweep will', { owner: ownerHash, error: dockerMessage(cleanup) }),
      );
      throw mapped;
    } finally {
      this.creating.delete(ownerHash);
    }
  }

  /** The owner's service exists already (another replica, a previous process): use it if it serves, else clear it away. */
  private async adoptOrDiscard(ownerHash: string, service: Docker.Service): Promise<ProxyHandle | null> {
    const task = currentTask(await this.services.tasksOf(service.ID), service.ID);
    if (phaseOf(task) === 'running') {
      try {
        await this.networks.ensure(ownerHash);
        const endpoint = await this.reach.endpointOf(ownerHash, task!);
        if (endpoint) {
          await waitHealthy(endpoint.host, endpoint.port, { timeoutMs: Math.min(this.options.startTimeoutMs, 3000), alive: () => this.services.whyNotRunning(service.ID) });
          this.census.started(ownerHash, containerIdOf(task) ?? task!.ID);
          return { ownerHash, id: service.ID, state: 'running', createdAt: createdOf(service.Spec?.Labels, service.CreatedAt ?? ''), endpoint };
        }
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
    const service = await this.services.inspect(ownerHash);
    if (service) {
      for (const task of await this.services.tasksOf(service.ID)) {
        const id = containerIdOf(task);
        if (id) this.exits.expect(id);
      }
      await this.services.remove(service.ID);
    }
    if (!options.keepNetwork) await patiently(async () => (await this.networks.remove(ownerHash), (await this.networks.inspect(ownerHash)) === null));
  }

  private async removeHalfMade(ownerHash: string): Promise<void> {
    const service = await this.services.inspect(ownerHash);
    if (service && phaseOf(currentTask(await this.services.tasksOf(service.ID), service.ID)) === 'running') return;
    await this.removeLocked(ownerHash);
  }

  private onContainerEvent(event: ContainerEvent): void {
    const ownerHash = event.ownerHash;
    if (ownerHash) {
      this.endpoints.forget(ownerHash);
      this.census.ended(ownerHash, event.containerId);
    }
    if (!ownerHash || this.creating.has(ownerHash) || this.exits.isExpected(event.containerId)) return;
    const detail =
      event.action === 'oom'
        ? `killed: out of memory (PROXY_MEMORY_MB=${this.options.memoryMb})`
        : event.action === 'die'
          ? `task container exited (code ${event.exitCode ?? 'unknown'})`
          : 'task container removed outside api-backend';
    this.reportExit(ownerHash, event.containerId, detail);
  }

  /** Tells the manager once, then removes the dead service and its network (freeing the subnet). */
  private reportExit(ownerHash: string, containerId: string, detail: string): void {
    if (!this.exits.claimReport(containerId)) return;
    this.options.onExit(ownerHash, detail);
    this.inBackground(
      this.lock.run(ownerHash, async () => {
        const service = await this.services.inspect(ownerHash);
        const task = service ? currentTask(await this.services.tasksOf(service.ID), service.ID) : undefined;
        // A newer task means this one's service was replaced already.
        if (task && phaseOf(task) === 'running' && containerIdOf(task) !== containerId) return;
        await this.removeLocked(ownerHash);
      }),
    );
  }

  private toHandle(ownerHash: string, service: Docker.Service, task: SwarmTask | undefined, resolve: EndpointResolver): ProxyHandle {
    const createdAt = createdOf(service.Spec?.Labels, service.CreatedAt ?? '');
    const creating = this.creating.has(ownerHash);
    const endpoint = task && phaseOf(task) === 'running' ? resolve(ownerHash, task) : undefined;
    const state = creating ? 'starting' : endpoint ? 'running' : 'stopped';
    return { ownerHash, id: service.ID, state, createdAt, ...(state === 'running' ? { endpoint } : {}) };
  }

  private inBackground(work: Promise<unknown>): void {
    const tracked = work.catch((error: unknown) => this.options.logger.warn('StreamingProxy swarm background work failed', { error: dockerMessage(error) }));
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }
}
