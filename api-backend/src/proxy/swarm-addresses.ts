/**
 * Who picks which address on a user's overlay, when api-backend replicas run as swarm tasks.
 *
 * Invariant: the swarm manager allocates only in the subnet's lower half (the overlay's IPRange),
 * and each replica joins at one fixed address in the upper half, picked by its task slot: slot 1
 * at the subnet's last host address, slot 2 just below it, and so on. The two never meet, and no
 * two running replicas share an address, because no two running tasks of a replicated service
 * share a slot (docker-stack.yml updates stop-first for this reason).
 *
 * Why not let the engine pick: a task's container that joins a network through the API gets its
 * address from its own node's allocator, not the manager's. That allocator knows only the
 * endpoints on its node, so on a node without the proxy it hands out the first free address,
 * which is the one the manager gave the proxy's task on another node: the replica then answers
 * for the proxy's address itself and never reaches it. Everything else on the overlay is
 * allocated by the manager (the proxy's task, each node's anchor and load-balancer endpoint).
 *
 * Room: a /28 leaves the manager 6 addresses (the proxy, and an anchor plus a load-balancer
 * endpoint on each node where replicas joined: two such nodes) and replicas 7 slots; every prefix
 * step wider doubles both.
 */
import { addressIn, formatCidr, parseCidr } from './subnet-pool';
import { startFailed } from './docker/errors';

/** The lower half of the subnet, where the manager allocates (the overlay's IPAM IPRange). */
export function managerRange(subnet: string): string {
  const { base, prefix } = parseCidr(subnet);
  return formatCidr({ base, prefix: prefix + 1 });
}

/** How many addresses the subnet spans, network and broadcast included. */
const sizeOf = (subnet: string): number => 2 ** (32 - parseCidr(subnet).prefix);

/** How many replica slots the subnet's upper half holds (all of it but the broadcast address). */
export function replicaSlots(subnet: string): number {
  return sizeOf(subnet) / 2 - 1;
}

/** Where the replica of this task slot joins the overlay, and where that overlay's proxy finds it. */
export function replicaAddress(subnet: string, slot: number): string {
  const { prefix } = parseCidr(subnet);
  if (prefix > 28) {
    // A /29's lower half is the gateway and two addresses: the proxy and one load-balancer endpoint, no anchor.
    throw startFailed(`a /${prefix} user network leaves the swarm manager no room for a node anchor: set PROXY_SUBNET_PREFIX to 28 or less when api-backend runs as swarm tasks`);
  }
  const slots = replicaSlots(subnet);
  if (!Number.isInteger(slot) || slot < 1 || slot > slots) {
    throw startFailed(
      `api-backend replica slot ${slot} has no address on a /${prefix} user network (room for ${slots} replicas): ` +
        'run fewer replicas or widen PROXY_SUBNET_PREFIX (27 holds 15)',
    );
  }
  // The broadcast address is the subnet's last; slot 1 sits just below it.
  return addressIn(subnet, sizeOf(subnet) - 1 - slot);
}

/** The slot in a swarm task's name (`<service>.<slot>.<task id>`); undefined for a global service's task. */
export function slotOf(taskName: string | undefined): number | undefined {
  const parts = taskName?.split('.') ?? [];
  const slot = Number(parts[parts.length - 2]);
  return parts.length >= 3 && Number.isInteger(slot) && slot > 0 ? slot : undefined;
}
