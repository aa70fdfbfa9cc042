/**
 * How api-backend reaches the tasks of proxy services, and where a proxy finds api-backend (see
 * swarm-driver.ts for why): in container mode at the task's address on the user's overlay, which
 * api-backend has joined; on the host at the task's leg on the node's docker_gwbridge, whose
 * gateway is the host. Also which swarm node api-backend runs on, since host mode pins proxies there.
 */
import type Docker from 'dockerode';
import type { Logger } from '../logger';
import type { ProxyEndpoint } from './driver';
import { ignoringGone, startFailed } from './docker/errors';
import { describePlacement, detectPlacement, type NetworkModeSetting, type Placement } from './docker/placement';
import { PROXY_PORT } from './docker/spec';
import { containerIdOf, overlayAddress, secretOf, type SwarmTask } from './swarm-tasks';
import { replicaAddress, slotOf } from './swarm-addresses';

const GWBRIDGE = 'docker_gwbridge';

export interface Where extends Placement {
  /** The swarm node api-backend's engine is. */
  nodeId?: string;
  /** api-backend is itself a swarm task (a stack replica), which joins an overlay only where it is in use. */
  task?: boolean;
  /** That task's slot in its replicated service, which picks its address on users' overlays (swarm-addresses.ts). */
  slot?: number;
}

/** The labels the engine puts on every swarm task's container. */
const TASK_LABEL = 'com.docker.swarm.task.id';
const TASK_NAME_LABEL = 'com.docker.swarm.task.name';

/** Finds a running task's endpoint; made once per look, so a listing reads docker_gwbridge once. */
export type EndpointResolver = (ownerHash: string, task: SwarmTask) => ProxyEndpoint | undefined;

export class SwarmReach {
  private placement?: Promise<Where>;

  constructor(
    private readonly docker: Docker,
    private readonly options: { networkMode: NetworkModeSetting; selfContainer?: string; logger: Logger },
  ) {}

  /** Where api-backend runs, found once; a failed look (engine away) is retried on the next call. */
  where(): Promise<Where> {
    this.placement ??= (async (): Promise<Where> => {
      const placement = await detectPlacement(this.docker, this.options.networkMode, this.options.selfContainer);
      const info = (await this.docker.info()) as { Swarm?: { NodeID?: string } };
      const self = placement.self ? await ignoringGone(() => this.docker.getContainer(placement.self!).inspect()) : undefined;
      const task = Boolean(self?.Config.Labels?.[TASK_LABEL]);
      const slot = task ? slotOf(self?.Config.Labels?.[TASK_NAME_LABEL]) : undefined;
      this.options.logger.info(`StreamingProxy ${describePlacement(placement)} (swarm${task ? `, as a swarm task, slot ${slot ?? 'none'}` : ''})`);
      return { ...placement, nodeId: info.Swarm?.NodeID || undefined, task, slot };
    })().catch((error: unknown) => {
      this.placement = undefined;
      throw error;
    });
    return this.placement;
  }

  async resolver(): Promise<EndpointResolver> {
    const { mode } = await this.where();
    const at = (task: SwarmTask, host: string | undefined): ProxyEndpoint | undefined => {
      const secret = secretOf(task);
      return host && secret ? { host, port: PROXY_PORT, secret } : undefined;
    };
    if (mode === 'container') return (ownerHash, task) => at(task, overlayAddress(task, ownerHash));
    const legs = (await this.gwbridge())?.Containers ?? {};
    return (_ownerHash, task) => {
      const containerId = containerIdOf(task);
      return at(task, containerId ? legs[containerId]?.IPv4Address?.split('/')[0] : undefined);
    };
  }

  /**
   * Where this replica joins an overlay of `subnet`: a swarm task at its slot's address
   * (swarm-addresses.ts), anything else where the manager puts it (undefined).
   */
  async joinAddress(subnet: string): Promise<string | undefined> {
    return (await this.where()).task ? this.slotAddress(subnet) : undefined;
  }

  /** This replica's slot's address on an overlay of `subnet`; only a swarm task has a slot. */
  async slotAddress(subnet: string): Promise<string> {
    const { slot } = await this.where();
    if (slot === undefined) {
      throw startFailed('api-backend runs as a swarm task without a replica slot (a global service?); run it as a replicated service, as docker-stack.yml does: its slot picks its address on users\' networks');
    }
    return replicaAddress(subnet, slot);
  }

  async endpointOf(ownerHash: string, task: SwarmTask): Promise<ProxyEndpoint | undefined> {
    return (await this.resolver())(ownerHash, task);
  }

  /** The host's address on docker_gwbridge, where a proxy reaches a host-mode api-backend. */
  async gwbridgeGateway(): Promise<string> {
    const gateway = (await this.gwbridge())?.IPAM?.Config?.[0]?.Gateway;
    if (!gateway) {
      throw startFailed(`the swarm node has no ${GWBRIDGE} yet (made with the first overlay task, or by hand before \`docker swarm init\`); api-backend on the host cannot reach proxies without it`);
    }
    return gateway;
  }

  private gwbridge(): Promise<Docker.NetworkInspectInfo | undefined> {
    return ignoringGone(() => this.docker.getNetwork(GWBRIDGE).inspect() as Promise<Docker.NetworkInspectInfo>);
  }
}
