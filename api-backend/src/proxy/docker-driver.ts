/**
 * The production driver: each user's streaming-proxy is a hardened container `ctll-proxy-<h>` on
 * its own network `ctll-net-<h>` (docker/spec.ts, docker/networks.ts), made through dockerode.
 *
 * What it shares with the swarm driver (the lock, endpoint cache, census, exit reports, events,
 * reconcile, adoption) is docker/engine-driver.ts; this file says what a proxy container is.
 *
 * A proxy counts as started once it answers GET /health from here (wait-healthy.ts); the user's
 * next request after it died provisions a new one. Engine failures become errors a person
 * can act on in docker/errors.ts, and nothing broken is cached: each call asks the engine anew,
 * so the driver recovers by itself when Docker comes back. Whether api-backend itself runs in a
 * container is found once, on first need (docker/placement.ts).
 *
 * Everything is labelled with PROXY_SCOPE, and every list, event filter and sweep is limited to
 * it, so api-backends sharing one engine (production and a test run) never touch each other's.
 */
import type Docker from 'dockerode';
import type { DriverHealth, ProxyHandle } from './driver';
import { containerName, LABELS } from './naming';
import { SubnetPool } from './subnet-pool';
import { mapLimit } from './map-limit';
import { waitHealthy } from './wait-healthy';
import { withTimeout } from '@ctll/protocol';
import { resolveDockerOptions, specOf, type DockerDriverOptions } from './docker/options';
import { containerSpec, isOurs, managedFilter, SCOPE_LABEL, type ProxySpecOptions } from './docker/spec';
import { ProxyNetworks } from './docker/networks';
import { describePlacement, detectPlacement, type Placement } from './docker/placement';
import { createdOf, endpointOf, handleOf, removeContainer, whyNotRunning } from './docker/containers';
import { classify, dockerMessage, dockerUnavailable, ignoringGone, imageMissing, startFailed } from './docker/errors';
import { ENGINE_CONCURRENCY, EngineDriver, type ExistingProxy } from './docker/engine-driver';

export { DOCKER_DRIVER_DEFAULTS, type DockerDriverOptions } from './docker/options';

export class DockerDriver extends EngineDriver {
  readonly name = 'docker' as const;
  protected readonly networks: ProxyNetworks;
  private readonly spec: ProxySpecOptions;
  private readonly proxyFilter: { label: string[] };
  private placement?: Promise<Placement>;

  constructor(options: DockerDriverOptions) {
    super(resolveDockerOptions(options), {
      engine: 'Docker',
      action: '',
      container: 'container',
      foundDead: (status) => `container found ${status.toLowerCase()}`,
    });
    const o = this.options;
    this.proxyFilter = { label: managedFilter(o.scope, 'proxy') };
    this.spec = specOf(o);
    const pool = new SubnetPool(o.subnetPool, o.subnetPrefix);
    this.networks = new ProxyNetworks(this.docker, { pool, spec: this.spec, placement: () => this.where(), logger: o.logger });
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

  protected async inspectProxy(ownerHash: string): Promise<ProxyHandle | null> {
    const info = await this.inspectContainer(ownerHash);
    return info ? this.toHandle(info) : null;
  }

  protected async listProxies(): Promise<{ handles: ProxyHandle[]; owners: Set<string | undefined> }> {
    const containers = await this.censusListing();
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
    return { handles: handles.filter((h): h is ProxyHandle => h !== null), owners: new Set(containers.map((c) => c.Labels[LABELS.owner])) };
  }

  protected listAsContainers(): Promise<Docker.ContainerInfo[]> {
    return this.docker.listContainers({ all: true, filters: this.proxyFilter });
  }

  protected async findExisting(ownerHash: string): Promise<ExistingProxy | undefined> {
    const info = await this.inspectContainer(ownerHash);
    if (!info) return undefined;
    return {
      id: info.Id,
      containerId: info.State.Running ? info.Id : undefined,
      createdAt: createdOf(info.Config.Labels, info.Created),
      labels: info.Config.Labels,
      endpoint: async () => endpointOf(info),
      alive: () => whyNotRunning(this.docker, info.Id),
    };
  }

  protected async provision(ownerHash: string): Promise<ProxyHandle> {
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
  }

  protected async removeProxy(ownerHash: string): Promise<void> {
    const info = await this.inspectContainer(ownerHash);
    if (!info) return;
    const container = this.docker.getContainer(info.Id);
    this.exits.expect(info.Id);
    if (info.State.Running) await ignoringGone(() => container.stop({ t: this.options.stopGraceSeconds }));
    await removeContainer(container);
  }

  protected async isRunning(ownerHash: string): Promise<boolean> {
    return (await this.inspectContainer(ownerHash))?.State.Running === true;
  }

  protected async replacedSince(ownerHash: string, containerId: string): Promise<boolean> {
    const info = await this.inspectContainer(ownerHash);
    // The same container may still look running right after an "oom" event, but it is on its way out.
    return info !== undefined && info.Id !== containerId;
  }

  /** Where api-backend runs, found once; a failed look (engine away) is retried on the next call. */
  protected where(): Promise<Placement> {
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

  /** The owner's container, if any; one another api-backend made under this name is never touched. */
  private async inspectContainer(ownerHash: string): Promise<Docker.ContainerInspectInfo | undefined> {
    const info = await ignoringGone(() => this.docker.getContainer(containerName(ownerHash)).inspect());
    if (info && !isOurs(info.Config.Labels, this.options.scope)) {
      throw new Error(`container ${containerName(ownerHash)} exists but was not made by this api-backend (PROXY_SCOPE=${info.Config.Labels?.[SCOPE_LABEL] ?? 'none'}); remove it`);
    }
    return info;
  }

  private toHandle(info: Docker.ContainerInspectInfo): ProxyHandle {
    const ownerHash = info.Config.Labels?.[LABELS.owner] ?? '';
    return handleOf(info, ownerHash, this.creating.has(ownerHash));
  }
}
