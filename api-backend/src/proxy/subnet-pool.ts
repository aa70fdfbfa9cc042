/**
 * Carves per-user network subnets out of PROXY_SUBNET_POOL (10.200.0.0/16 by default) in blocks
 * of PROXY_SUBNET_PREFIX (/28: 16 addresses, room for the gateway, the proxy and api-backend).
 * A /16 holds 4096 such networks, where Docker's default address pools run dry after ~30.
 *
 * The pool keeps no record of which blocks belong to whom: the Docker engine does. Each pick is
 * handed every subnet the engine knows (ours and anybody else's that overlaps the pool), plus the
 * blocks this process has reserved for creates still in flight; a reservation is released once the
 * engine lists the new network (or the create failed). Another api-backend replica can still race
 * us to a block; the engine then refuses the second create ("pool overlaps") and the caller picks
 * again with that block excluded.
 *
 * The scan starts at a random block, so replicas rarely pick the same one and a freshly freed
 * subnet (and its proxy's IP address) is not handed straight to the next user.
 */
import { randomInt } from 'node:crypto';
import { formatIPv4, ipv4Mask, parseIPv4 } from '@ctll/protocol';

export interface Ipv4Cidr {
  /** The network address as an unsigned 32-bit integer. */
  base: number;
  prefix: number;
}

export class InvalidCidrError extends Error {}

/** Parses "a.b.c.d/n"; strict (the default) refuses host bits, loose masks them off. */
export function parseCidr(text: string, mode: 'strict' | 'loose' = 'strict'): Ipv4Cidr {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text.trim());
  if (!match) throw new InvalidCidrError(`"${text}" is not an IPv4 CIDR like 10.200.0.0/16`);
  const address = parseIPv4(match[1]);
  const prefix = Number(match[2]);
  if (address === undefined || prefix > 32) throw new InvalidCidrError(`"${text}" is not a valid IPv4 CIDR`);
  const base = (address & ipv4Mask(prefix)) >>> 0;
  if (base !== address && mode === 'strict') throw new InvalidCidrError(`"${text}" has host bits set; did you mean ${formatCidr({ base, prefix })}?`);
  return { base, prefix };
}

export function formatCidr(cidr: Ipv4Cidr): string {
  return `${formatIPv4(cidr.base)}/${cidr.prefix}`;
}

/** The n-th address inside a subnet (1 is Docker's gateway). */
export function addressIn(cidr: string, n: number): string {
  return formatIPv4(parseCidr(cidr).base + n);
}

const sizeOf = (prefix: number): number => 2 ** (32 - prefix);

export interface SubnetReservation {
  subnet: string;
  /** Frees the block for other picks in this process; call once the engine lists it, or on failure. */
  release(): void;
}

export class SubnetPool {
  readonly pool: Ipv4Cidr;
  readonly blockPrefix: number;
  /** How many networks the pool holds. */
  readonly blocks: number;
  private readonly inFlight = new Set<number>();

  constructor(pool: string, blockPrefix: number) {
    this.pool = parseCidr(pool);
    // /29 is the smallest block with room for network, gateway, proxy, api-backend and broadcast.
    if (!Number.isInteger(blockPrefix) || blockPrefix < this.pool.prefix || blockPrefix > 29) {
      throw new InvalidCidrError(`subnet block /${blockPrefix} must lie between the pool's /${this.pool.prefix} and /29`);
    }
    this.blockPrefix = blockPrefix;
    this.blocks = sizeOf(this.pool.prefix) / sizeOf(blockPrefix);
  }

  get reserved(): number {
    return this.inFlight.size;
  }

  /**
   * Reserves a block that overlaps none of `used` (subnets as the engine reports them; anything
   * unparsable, e.g. IPv6, is ignored), none of `exclude` and none held in flight here.
   * Returns null when the pool is full.
   */
  reserve(used: Iterable<string>, exclude: Iterable<string> = []): SubnetReservation | null {
    const taken = new Uint8Array(this.blocks);
    for (const subnet of [...used, ...exclude]) this.markOverlap(taken, subnet);
    const start = randomInt(this.blocks);
    for (let step = 0; step < this.blocks; step += 1) {
      const index = (start + step) % this.blocks;
      if (taken[index] || this.inFlight.has(index)) continue;
      this.inFlight.add(index);
      let released = false;
      return {
        subnet: formatCidr({ base: this.pool.base + index * sizeOf(this.blockPrefix), prefix: this.blockPrefix }),
        release: () => {
          if (released) return;
          released = true;
          this.inFlight.delete(index);
        },
      };
    }
    return null;
  }

  /** True when the subnet lies inside the pool (so it was, or could have been, made by us). */
  contains(subnet: string): boolean {
    const cidr = tryParse(subnet);
    if (!cidr || cidr.prefix < this.pool.prefix) return false;
    return (cidr.base & ipv4Mask(this.pool.prefix)) >>> 0 === this.pool.base;
  }

  private markOverlap(taken: Uint8Array, subnet: string): void {
    const cidr = tryParse(subnet);
    if (!cidr) return;
    const poolEnd = this.pool.base + sizeOf(this.pool.prefix) - 1;
    const low = Math.max(cidr.base, this.pool.base);
    const high = Math.min(cidr.base + sizeOf(cidr.prefix) - 1, poolEnd);
    if (low > high) return;
    const blockSize = sizeOf(this.blockPrefix);
    const first = Math.floor((low - this.pool.base) / blockSize);
    const last = Math.floor((high - this.pool.base) / blockSize);
    taken.fill(1, first, last + 1);
  }
}

function tryParse(subnet: string): Ipv4Cidr | null {
  try {
    return parseCidr(subnet, 'loose');
  } catch {
    return null;
  }
}
