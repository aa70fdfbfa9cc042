/**
 * The per-user networks: `ctll-net-<h>`, one bridge per user with an explicit subnet from the
 * pool, so no proxy ever shares a network with another user's proxy, and Docker's small default
 * address pools are never used.
 *
 * How api-backend reaches a proxy depends on where it runs (docker/placement.ts):
 * - `host`: api-backend is a process on the Docker host, which has an address (the gateway, .1) on
 *   every bridge network and so routes straight to each proxy's address. Nothing to join.
 * - `container`: api-backend is itself a container (docker-compose.production.yml). It joins each
 *   user's network before the proxy starts (a swarm task: once the proxy runs, swarm-driver.ts),
 *   and leaves it before the network is removed.
 * Either way, `backendAddress` is where the proxy finds api-backend on its network.
 */
import type Docker from 'dockerode';
import type { Logger } from '../../logger';
import { classify, dockerMessage, ignoringGone, subnetsExhausted, toRelayError } from './errors';
import { isOurs, managedFilter, networkSpec, SCOPE_LABEL, type ProxySpecOptions } from './spec';
import { LABELS, networkName } from '../naming';
import { addressIn, formatCidr, type SubnetPool } from '../subnet-pool';
import type { Placement } from './placement';

/** How often a join that left api-backend without an address is undone and made again, and the pause before. */
const JOIN_REPAIRS = 3;
const JOIN_REPAIR_WAIT_MS = 500;

export interface UserNetwork {
  id: string;
  name: string;
  subnet: string;
  /** Where the proxy reaches api-backend on this network. */
  backendAddress: string;
}

export interface ProxyNetworksOptions {
  pool: SubnetPool;
  spec: ProxySpecOptions;
  /** Where api-backend runs (docker/placement.ts); asked before each join or leave. */
  placement: () => Promise<Placement>;
  logger: Logger;
  /** How many subnets to try when other creators keep winning the race for them (default 8). */
  maxSubnetAttempts?: number;
  /** The network's create body; default a bridge (networkSpec). The swarm driver makes overlays. */
  body?: (ownerHash: string, subnet: string) => Docker.NetworkCreateOptions;
  /** Where a proxy on this network finds api-backend on the host; default the bridge's gateway (.1). */
  hostAddress?: (network: Docker.NetworkInspectInfo, subnet: string) => Promise<string>;
  /** Runs before api-backend's container joins a network (the swarm driver's node anchor goes first). */
  beforeJoin?: (network: Docker.NetworkInspectInfo) => Promise<void>;
  /** Where api-backend joins a network when no address is asked for; default the engine's pick (a swarm task's: swarm-addresses.ts). */
  joinAddress?: (subnet: string) => Promise<string | undefined>;
}

export class ProxyNetworks {
  constructor(
    private readonly docker: Docker,
    private readonly options: ProxyNetworksOptions,
  ) {}

  /**
   * The owner's network, created with a free subnet when it does not exist yet, and joined (see
   * attach). `join: false` only makes sure it exists: a swarm task joins later (swarm-driver.ts).
   */
  async ensure(ownerHash: string, { join = true }: { join?: boolean } = {}): Promise<UserNetwork> {
    const settle = (info: Docker.NetworkInspectInfo): Promise<UserNetwork> =>
      join ? this.attach(info) : Promise.resolve({ id: info.Id, name: info.Name, subnet: subnetOf(info), backendAddress: '' });
    const existing = await this.inspect(ownerHash);
    if (existing) return settle(existing);
    const excluded: string[] = [];
    const attempts = this.options.maxSubnetAttempts ?? 8;
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const used = (await this.docker.listNetworks()).flatMap(subnetsOf);
      const reservation = this.options.pool.reserve(used, excluded);
      if (!reservation) {
        const ours = used.filter((subnet) => this.options.pool.contains(subnet)).length;
        throw subnetsExhausted(formatCidr(this.options.pool.pool), this.options.pool.blockPrefix, ours);
      }
      try {
        const body = this.options.body?.(ownerHash, reservation.subnet) ?? networkSpec(ownerHash, reservation.subnet, this.options.spec);
        await this.docker.createNetwork(body);
      } catch (error) {
        const failure = classify(error);
        if (failure === 'pool-overlap') {
          // Taken since we looked (another replica, a person): pick again without it.
          excluded.push(reservation.subnet);
          this.options.logger.info('StreamingProxy subnet taken meanwhile; picking another', { owner: ownerHash, subnet: reservation.subnet });
          continue;
        }
        if (failure !== 'conflict') throw toRelayError(error, { action: `create network ${networkName(ownerHash)}`, image: this.options.spec.image });
        // Someone made this owner's network since we looked: use theirs.
      } finally {
        reservation.release(); // the engine lists the network from now on
      }
      const made = await this.inspect(ownerHash);
      if (made) return settle(made);
    }
    throw toRelayError(new Error(`no subnet accepted after ${attempts} attempts`), {
      action: `create network ${networkName(ownerHash)}`,
      image: this.options.spec.image,
    });
  }

  /**
   * The owner's network as the engine has it, or null. Network names are not unique to Docker:
   * two creates racing (two replicas, a restart overlapping a shutdown) can both succeed, so the
   * oldest is the owner's network and any later twin of ours is removed here.
   */
  async inspect(ownerHash: string): Promise<Docker.NetworkInspectInfo | null> {
    const [info, ...twins] = await this.byName(ownerHash);
    if (!info) return null;
    if (!isOurs(info.Labels, this.options.spec.scope)) {
      const scope = info.Labels?.[LABELS.managed] === 'true' ? ` (it belongs to PROXY_SCOPE=${info.Labels[SCOPE_LABEL] ?? '?'})` : '';
      throw toRelayError(new Error(`a network named ${info.Name} exists but was not made by this api-backend${scope}; remove it`), {
        action: 'use the proxy network',
        image: this.options.spec.image,
      });
    }
    for (const twin of twins) {
      if (!isOurs(twin.Labels, this.options.spec.scope)) continue;
      this.options.logger.warn('StreamingProxy network made twice; removing the later one', { owner: ownerHash, network: twin.Id });
      await ignoringGone(() => this.docker.getNetwork(twin.Id).remove()).catch(() => undefined);
    }
    return info;
  }

  /** Networks with exactly the owner's network name, oldest first, inspected by id. */
  private async byName(ownerHash: string): Promise<Docker.NetworkInspectInfo[]> {
    const name = networkName(ownerHash);
    // The engine's name filter matches substrings: keep exact names only.
    const listed = (await this.docker.listNetworks({ filters: { name: [name] } })).filter((n) => n.Name === name);
    const infos = await Promise.all(
      listed.map((n) => ignoringGone(() => this.docker.getNetwork(n.Id).inspect()) as Promise<Docker.NetworkInspectInfo | undefined>),
    );
    return infos
      .filter((info): info is Docker.NetworkInspectInfo => info !== undefined)
      .sort((a, b) => Date.parse(a.Created) - Date.parse(b.Created));
  }

  /** Every network we made, as the engine lists them. */
  async list(): Promise<Docker.NetworkInspectInfo[]> {
    return this.docker.listNetworks({ filters: { label: managedFilter(this.options.spec.scope, 'network') } });
  }

  /**
   * Joins api-backend to the owner's existing network unless it is on it already (container mode;
   * nothing to do on the host). Another replica may have started the proxy: until this one joins,
   * the proxy's address is unreachable from here. Asks the engine, not a memory of past joins,
   * because another replica may have removed the network and made a new one since.
   */
  async join(ownerHash: string): Promise<void> {
    const { mode, self } = await this.options.placement();
    if (mode === 'host' || !self) return;
    const info = await this.inspect(ownerHash);
    if (!info) return;
    const mine = await this.docker.getContainer(self).inspect();
    const entry = mine.NetworkSettings.Networks[info.Name];
    if (entry?.NetworkID === info.Id && entry.IPAddress) return;
    this.options.logger.info('StreamingProxy joining a user network another replica made', { owner: ownerHash, network: info.Name });
    await this.attach(info);
  }

  /**
   * Detaches every container on this node from the owner's network except those `keep` says stay
   * (the proxy's own task): api-backend itself and any other replica that joined it. Swarm needs
   * this before a proxy service goes (swarm-driver.ts). Returns how many it detached.
   */
  async detachAllBut(ownerHash: string, keep: (endpointName: string) => boolean): Promise<number> {
    let detached = 0;
    for (const found of await this.byName(ownerHash)) {
      if (!isOurs(found.Labels, this.options.spec.scope)) continue;
      const network = this.docker.getNetwork(found.Id);
      const current = (await ignoringGone(() => network.inspect())) as Docker.NetworkInspectInfo | undefined;
      for (const [id, endpoint] of Object.entries(current?.Containers ?? {})) {
        // `lb-<network>` is the overlay's own load-balancer endpoint, not a container.
        if (id.startsWith('lb-') || keep(endpoint.Name)) continue;
        await ignoringGone(() => network.disconnect({ Container: id, Force: true }));
        detached += 1;
      }
    }
    return detached;
  }

  /** Removes the owner's network, first detaching api-backend and anything else still on it. */
  async remove(ownerHash: string): Promise<void> {
    const { self } = await this.options.placement();
    for (const found of await this.byName(ownerHash)) {
      if (!isOurs(found.Labels, this.options.spec.scope)) continue; // somebody else's: never ours to remove
      const network = this.docker.getNetwork(found.Id);
      if (self) await ignoringGone(() => network.disconnect({ Container: self, Force: true }));
      try {
        await ignoringGone(() => network.remove());
      } catch (error) {
        if (classify(error) !== 'active-endpoints') throw error;
        const current = (await ignoringGone(() => network.inspect())) as Docker.NetworkInspectInfo | undefined;
        for (const id of Object.keys(current?.Containers ?? {})) {
          await ignoringGone(() => network.disconnect({ Container: id, Force: true }));
        }
        await ignoringGone(() => network.remove());
      }
    }
  }

  /**
   * Joins api-backend to the network when it runs in a container; says where the proxy finds it.
   * `address` asks for that address on the network (one the proxy was told before the join).
   */
  async attach(info: Docker.NetworkInspectInfo, address?: string): Promise<UserNetwork> {
    const subnet = subnetOf(info);
    const base = { id: info.Id, name: info.Name, subnet };
    const { mode, self } = await this.options.placement();
    if (mode === 'host' || !self) {
      return { ...base, backendAddress: this.options.hostAddress ? await this.options.hostAddress(info, subnet) : addressIn(subnet, 1) };
    }
    address ??= await this.options.joinAddress?.(subnet);
    await this.options.beforeJoin?.(info);
    // A join can look done and not be: on swarm, a replica taken off a user's overlay and joined
    // to a new one of the same name (the user's proxy stopped and started again) has been seen
    // left with an entry for the network and no address on it, once the engine caught up with
    // the earlier detach. Such a join is undone and made again.
    let seen = '';
    for (let repair = 0; repair < JOIN_REPAIRS; repair += 1) {
      if (repair > 0) {
        this.options.logger.warn('StreamingProxy joined a user network without an address on it; joining again', { network: info.Name, seen });
        await ignoringGone(() => this.docker.getNetwork(info.Id).disconnect({ Container: self, Force: true })).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, JOIN_REPAIR_WAIT_MS));
      }
      const conflict = await this.connect(info, self, address);
      const entry = (await this.docker.getContainer(self).inspect()).NetworkSettings.Networks[info.Name];
      if (entry?.IPAddress && (!entry.NetworkID || entry.NetworkID === info.Id)) return { ...base, backendAddress: entry.IPAddress };
      seen = entry
        ? `its entry names network ${entry.NetworkID?.slice(0, 12) || 'none'}, address ${entry.IPAddress || 'none'}`
        : 'it has no entry for it';
      if (conflict) seen += `; the join answered "${conflict}"`;
    }
    throw new Error(`api-backend (${self}) joined ${info.Name} (${info.Id.slice(0, 12)}) but has no address on it: ${seen}`);
  }

  /** Connects api-backend's container; returns the engine's answer when it was connected already. */
  private async connect(info: Docker.NetworkInspectInfo, self: string, address?: string): Promise<string | undefined> {
    const endpoint = address ? { EndpointConfig: { IPAMConfig: { IPv4Address: address } } } : {};
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.docker.getNetwork(info.Id).connect({ Container: self, ...endpoint });
        return undefined;
      } catch (error) {
        if (classify(error) === 'conflict') return dockerMessage(error);
        // Joining an overlay waits on the swarm manager, whose own deadline a busy node can miss.
        if (attempt < 3 && /attaching to network failed/i.test(dockerMessage(error))) continue;
        throw toRelayError(error, { action: `join api-backend (${self}) to ${info.Name}`, image: this.options.spec.image });
      }
    }
  }
}

function subnetOf(info: Docker.NetworkInspectInfo): string {
  return subnetsOf(info)[0] ?? info.Labels?.[LABELS.subnet] ?? '';
}

export function subnetsOf(network: Docker.NetworkInspectInfo): string[] {
  return (network.IPAM?.Config ?? []).map((config) => config.Subnet).filter((subnet): subnet is string => typeof subnet === 'string');
}

/** api-backend's own URL (as it listens) moved to its address on a user's network, where that proxy reaches it. */
export function backendUrlAt(listeningUrl: string | undefined, address: string): string | undefined {
  if (!listeningUrl) return undefined;
  const url = new URL(listeningUrl);
  url.hostname = address;
  return url.origin;
}
