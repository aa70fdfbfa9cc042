/**
 * PROXY_DRIVER=swarm: each user's streaming-proxy is a swarm service `ctll-proxy-<h>` (one
 * replica, restart condition none) on an attachable overlay `ctll-net-<h>` with a subnet from the
 * same pool as the docker driver (swarm-spec.ts). The manager sees no difference: the same
 * states, the same endpoint cache, the same exit reports, the same reconcile rules
 * (docker/reconcile.ts over services mapped by swarm-tasks.ts), the same labels and scope; all of
 * that is shared code (docker/engine-driver.ts), and this file says what a proxy service is.
 * api-backend talks to a swarm manager's engine.
 *
 * How api-backend reaches a task. An overlay's addresses live in the overlay's own namespace:
 * the host has no interface there and no route to them (a packet for one leaves by the host's
 * default route, off the machine). So:
 * - `container` mode, a plain container: api-backend runs under docker compose on a
 *   manager and joins each user's overlay, which is attachable for this reason, exactly as the
 *   docker driver joins each bridge (docker/networks.ts attach). It reaches the task at its overlay
 *   address on any node.
 * - `container` mode as a swarm task (a replica of docker-stack.yml): the engine lets a task join
 *   an attachable overlay only on a node where that overlay is in use already; anywhere else it
 *   answers `network <name> not found`. So the driver creates the service first (placed by
 *   PROXY_PLACEMENT alone, on any node), and once the proxy's task runs, connects this node's
 *   anchor (a plain container, swarm-anchor.ts) to the overlay, which puts it in use here, and
 *   joins at the address it told the proxy: its task slot's, in the subnet's upper half, which the
 *   manager never hands out (swarm-addresses.ts). Another replica adopting the proxy joins the same
 *   way, at its own slot's address.
 *   A stop takes this node's replicas off the overlay first, the anchor last, then removes the
 *   service and the overlay; replicas and anchors on other nodes leave at their own next sweep
 *   (a disconnect is the node's own business), and the overlay goes then.
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
import type Docker from 'dockerode';
import type { DriverHealth, ProxyHandle } from './driver';
import { containerName, LABELS, networkName } from './naming';
import { SubnetPool } from './subnet-pool';
import { waitHealthy } from './wait-healthy';
import { withTimeout } from '@ctll/protocol';
import { resolveDockerOptions, specOf, type DockerDriverOptions } from './docker/options';
import { ProxyNetworks } from './docker/networks';
import type { Placement } from './docker/placement';
import { createdOf } from './docker/containers';
import { classify, dockerMessage, dockerUnavailable, ignoringGone, imageMissing, startFailed } from './docker/errors';
import { EngineDriver, type ExistingProxy } from './docker/engine-driver';
import { overlaySpec, serviceSpec, type ServiceSpecOptions } from './swarm-spec';
import { asContainers, containerIdOf, currentTask, phaseOf, type SwarmTask } from './swarm-tasks';
import { patiently, ProxyServices } from './swarm-services';
import { SwarmReach, type EndpointResolver } from './swarm-reach';
import { NodeAnchor } from './swarm-anchor';
import { StartGate } from './start-gate';

export interface SwarmDriverOptions extends DockerDriverOptions {
  /** Placement constraints of proxy services (PROXY_PLACEMENT). */
  placement?: string[];
  /** Proxy services this api-backend starts at once; more wait their turn (start-gate.ts). */
  startsAtOnce?: number;
}

/**
 * See startsAtOnce. A swarm task costs its node's dockerd some 3-4 CPU-seconds to prepare and
 * start (a docker proxy about 0.5), so on a two-core node two at a time already keep it busy.
 */
export const SWARM_STARTS_AT_ONCE = 2;

/**
 * How long a stop keeps trying to remove an overlay that a container on another node holds (the
 * engine names a task that is not the proxy's: a replica's or an anchor's attachment there) before
 * leaving it to that node's sweep. The proxy's own task shutting down is waited for in full.
 */
const OTHER_NODES_GRACE_MS = 3_000;

export class SwarmDriver extends EngineDriver {
  readonly name = 'swarm' as const;
  protected readonly networks: ProxyNetworks;
  private readonly placement: string[];
  private readonly spec: ServiceSpecOptions;
  private readonly services: ProxyServices;
  private readonly reach: SwarmReach;
  private readonly gate: StartGate;
  private readonly anchor: NodeAnchor;
  /** The tasks of proxy services being removed, by owner: their hold on the overlay is waited out. */
  private readonly leavingTasks = new Map<string, Set<string>>();

  constructor(options: SwarmDriverOptions) {
    super(resolveDockerOptions(options), {
      engine: 'swarm',
      action: 'service ',
      container: 'task container',
      foundDead: (status) => `service found with its ${status}`,
    });
    const o = this.options;
    this.placement = options.placement ?? [];
    this.gate = new StartGate(options.startsAtOnce ?? SWARM_STARTS_AT_ONCE);
    this.spec = { ...specOf(o), constraints: this.placement };
    this.services = new ProxyServices(this.docker, o.scope);
    this.reach = new SwarmReach(this.docker, { networkMode: o.networkMode, selfContainer: o.selfContainer, logger: o.logger });
    this.anchor = new NodeAnchor(this.docker, { scope: o.scope, image: async () => (await this.docker.getImage(o.image).inspect()).Id, logger: o.logger });
    this.networks = new ProxyNetworks(this.docker, {
      pool: new SubnetPool(o.subnetPool, o.subnetPrefix),
      spec: this.spec,
      placement: () => this.reach.where(),
      logger: o.logger,
      body: (ownerHash, subnet) => overlaySpec(ownerHash, subnet, this.spec),
      hostAddress: () => this.reach.gwbridgeGateway(),
      // A task may join only where the overlay is in use: the anchor puts it in use on this node.
      beforeJoin: async (network) => {
        if ((await this.reach.where()).task) await this.anchor.join(network);
      },
      joinAddress: (subnet) => this.reach.joinAddress(subnet),
    });
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

  protected async inspectProxy(ownerHash: string): Promise<ProxyHandle | null> {
    const service = await this.services.inspect(ownerHash);
    if (!service) return null;
    return this.toHandle(ownerHash, service, currentTask(await this.services.tasksOf(service.ID), service.ID), await this.reach.resolver());
  }

  protected async listProxies(): Promise<{ handles: ProxyHandle[]; owners: Set<string | undefined> }> {
    const [services, tasks] = await this.services.listWithTasks();
    const resolve = services.length > 0 ? await this.reach.resolver() : () => undefined;
    const handles: ProxyHandle[] = [];
    for (const service of services) {
      const ownerHash = service.Spec?.Labels?.[LABELS.owner];
      if (ownerHash) handles.push(this.toHandle(ownerHash, service, currentTask(tasks, service.ID), resolve));
    }
    return { handles, owners: new Set(services.map((s) => s.Spec?.Labels?.[LABELS.owner])) };
  }

  /** Services and their current tasks, read as the docker driver's container listing (swarm-tasks.ts). */
  protected async listAsContainers(): Promise<Docker.ContainerInfo[]> {
    const [services, tasks] = await this.services.listWithTasks();
    return asContainers(services, tasks);
  }

  protected async findExisting(ownerHash: string): Promise<ExistingProxy | undefined> {
    const service = await this.services.inspect(ownerHash);
    if (!service) return undefined;
    const task = currentTask(await this.services.tasksOf(service.ID), service.ID);
    const running = task && phaseOf(task) === 'running';
    return {
      id: service.ID,
      containerId: running ? (containerIdOf(task) ?? task.ID) : undefined,
      createdAt: createdOf(service.Spec?.Labels, service.CreatedAt ?? ''),
      labels: service.Spec?.Labels,
      endpoint: async () => (task ? this.reach.endpointOf(ownerHash, task) : undefined),
      alive: () => this.services.whyNotRunning(service.ID),
    };
  }

  /**
   * A burst of starts takes turns (start-gate.ts): on one node the engine prepares tasks at a
   * rate of its own, and starts sharing it all at once all missed PROXY_START_TIMEOUT_MS together.
   */
  protected provision(ownerHash: string): Promise<ProxyHandle> {
    return this.gate.run(() => this.provisionNow(ownerHash));
  }

  private async provisionNow(ownerHash: string): Promise<ProxyHandle> {
    const where = await this.reach.where();
    if (where.mode === 'host' && this.options.egress === 'none') {
      throw startFailed('PROXY_EGRESS=none makes user overlays internal, which a host process cannot reach: run api-backend in a container (PROXY_NETWORK_MODE=container) or use PROXY_EGRESS=internet');
    }
    // By id: the engine never tries a registry for an image id (see the header).
    const image = await ignoringGone(() => this.docker.getImage(this.options.image).inspect());
    if (!image) throw imageMissing(this.options.image);
    // A task joins only once the proxy's task holds the overlay on this node: it tells the proxy
    // the address it will ask for then (its slot's, swarm-addresses.ts).
    const joinLater = where.mode === 'container' && where.task === true;
    const network = await this.networks.ensure(ownerHash, { join: !joinLater });
    const backendAddress = joinLater ? await this.reach.slotAddress(network.subnet) : network.backendAddress;
    const secret = this.options.secretFor(ownerHash);
    const env = this.options.env(ownerHash, secret, backendAddress);
    // Pinned to this node where api-backend reaches the task only from here (host mode's gwbridge leg).
    const pin = where.mode === 'host' && where.nodeId ? [`node.id==${where.nodeId}`] : [];
    const constraints = [...this.placement, ...pin];
    const body = serviceSpec(ownerHash, { subnet: network.subnet, networkId: network.id, imageId: image.Id }, env, { ...this.spec, constraints });
    const created = (await this.docker.createService(body as unknown as Docker.CreateServiceOptions)) as unknown as { id?: string; ID?: string };
    const serviceId = created.id ?? created.ID ?? containerName(ownerHash);
    const task = await this.services.waitForTask(serviceId, this.options.startTimeoutMs);
    if (joinLater) {
      const info = await this.networks.inspect(ownerHash);
      if (!info) throw startFailed(`network ${networkName(ownerHash)} vanished during start-up`);
      await this.networks.attach(info, backendAddress);
    }
    const endpoint = await this.reach.endpointOf(ownerHash, task);
    if (!endpoint) throw startFailed(`task ${task.ID} of ${containerName(ownerHash)} runs but has no address api-backend can reach`);
    await waitHealthy(endpoint.host, endpoint.port, { timeoutMs: this.options.startTimeoutMs, alive: () => this.services.whyNotRunning(serviceId) });
    this.census.started(ownerHash, containerIdOf(task) ?? task.ID);
    return { ownerHash, id: serviceId, state: 'running', createdAt: new Date(), endpoint };
  }

  protected async removeProxy(ownerHash: string): Promise<void> {
    // Every replica on this node leaves while the anchor (and the proxy's task, if it runs here)
    // still holds the overlay, and the anchor leaves last. One detached after the overlay's other
    // users here were gone leaves its attachment behind in the manager, and the overlay then
    // lingers for good: listed, but "not found" to every remove. The other replicas on this node
    // do not know of this stop, so this one takes them off too.
    if ((await this.reach.where()).task) {
      const detached = await this.networks.detachAllBut(ownerHash, (name) => name.startsWith(`${containerName(ownerHash)}.`) || this.anchor.isAnchor(name));
      if (detached > 0) this.options.logger.info('StreamingProxy took api-backend replicas off the overlay before removing the service', { owner: ownerHash, detached });
      const network = await this.networks.inspect(ownerHash);
      if (network) await this.anchor.leave(network.Id);
    }
    const service = await this.services.inspect(ownerHash);
    if (!service) return;
    const tasks = await this.services.tasksOf(service.ID);
    for (const task of tasks) {
      const id = containerIdOf(task);
      if (id) this.exits.expect(id);
    }
    this.leavingTasks.set(ownerHash, new Set(tasks.map((task) => task.ID)));
    await this.services.remove(service.ID);
  }

  /**
   * The overlay lingers a moment after its last task; waiting frees the subnet for the next start.
   * Replicas on other nodes that joined it hold it until their own sweep takes them off: past a
   * grace, with the service gone, it is left to them (the user's next start reuses it meanwhile).
   */
  protected override async removeNetwork(ownerHash: string): Promise<void> {
    const began = Date.now();
    const proxyTasks = this.leavingTasks.get(ownerHash) ?? new Set<string>();
    this.leavingTasks.delete(ownerHash);
    await patiently(async () => {
      try {
        await this.networks.remove(ownerHash);
      } catch (error) {
        const holder = /in use by task (\w+)/i.exec(dockerMessage(error))?.[1];
        if (!holder || [...proxyTasks].some((id) => id.startsWith(holder)) || Date.now() - began < OTHER_NODES_GRACE_MS || (await this.services.inspect(ownerHash))) throw error;
        this.options.logger.info('StreamingProxy overlay still held on another node; replicas there leave it at their next sweep, and it is removed then', {
          owner: ownerHash,
          network: networkName(ownerHash),
          heldBy: holder,
        });
        return true;
      }
      return (await this.networks.inspect(ownerHash)) === null;
    });
  }

  protected async isRunning(ownerHash: string): Promise<boolean> {
    const service = await this.services.inspect(ownerHash);
    return service !== undefined && phaseOf(currentTask(await this.services.tasksOf(service.ID), service.ID)) === 'running';
  }

  protected async replacedSince(ownerHash: string, containerId: string): Promise<boolean> {
    const service = await this.services.inspect(ownerHash);
    const task = service ? currentTask(await this.services.tasksOf(service.ID), service.ID) : undefined;
    // A newer task means this one's service was replaced already.
    return task !== undefined && phaseOf(task) === 'running' && containerIdOf(task) !== containerId;
  }

  protected where(): Promise<Placement> {
    return this.reach.where();
  }

  private toHandle(ownerHash: string, service: Docker.Service, task: SwarmTask | undefined, resolve: EndpointResolver): ProxyHandle {
    const createdAt = createdOf(service.Spec?.Labels, service.CreatedAt ?? '');
    const creating = this.creating.has(ownerHash);
    const endpoint = task && phaseOf(task) === 'running' ? resolve(ownerHash, task) : undefined;
    const state = creating ? 'starting' : endpoint ? 'running' : 'stopped';
    return { ownerHash, id: service.ID, state, createdAt, ...(state === 'running' ? { endpoint } : {}) };
  }
}
