import { managerRange, replicaAddress, replicaSlots, slotOf } from '../src/proxy/swarm-addresses';
import { overlaySpec } from '../src/proxy/swarm-spec';
import { parseCidr } from '../src/proxy/subnet-pool';

const inside = (cidr: string, address: string): boolean => {
  const { base, prefix } = parseCidr(cidr);
  const [a, b, c, d] = address.split('.').map(Number);
  const value = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  return value >= base && value < base + 2 ** (32 - prefix);
};

describe('swarm addresses: the manager in the lower half, replicas by slot in the upper', () => {
  it("gives the manager the subnet's lower half, which every user overlay carries as its IPRange", () => {
    expect(managerRange('10.200.3.16/28')).toBe('10.200.3.16/29');
    expect(managerRange('10.200.4.0/27')).toBe('10.200.4.0/28');
    const options = { scope: 'default', image: 'img', memoryMb: 128, cpus: 0.5, pidsLimit: 64, tmpfsMb: 16, stopGraceSeconds: 10, logMaxSize: '1m', logMaxFiles: 2, egress: 'none' as const };
    const body = overlaySpec('0123456789abcdef', '10.200.3.16/28', options);
    expect(body.IPAM?.Config).toEqual([{ Subnet: '10.200.3.16/28', IPRange: '10.200.3.16/29' }]);
  });

  it('puts slot 1 at the last host address and each next slot below it, never in the manager range or on broadcast', () => {
    expect(replicaAddress('10.200.3.16/28', 1)).toBe('10.200.3.30');
    expect(replicaAddress('10.200.3.16/28', 2)).toBe('10.200.3.29');
    expect(replicaSlots('10.200.3.16/28')).toBe(7);
    const all = Array.from({ length: 7 }, (_, i) => replicaAddress('10.200.3.16/28', i + 1));
    expect(new Set(all).size).toBe(7);
    for (const address of all) {
      expect(inside('10.200.3.16/28', address)).toBe(true);
      expect(inside(managerRange('10.200.3.16/28'), address)).toBe(false);
      expect(address).not.toBe('10.200.3.31');
    }
    expect(replicaSlots('10.200.4.0/27')).toBe(15);
  });

  it('refuses a slot the subnet has no room for, naming the setting to widen', () => {
    expect(() => replicaAddress('10.200.3.16/28', 8)).toThrow(/slot 8 has no address on a \/28 .*room for 7 replicas.*PROXY_SUBNET_PREFIX/);
    expect(() => replicaAddress('10.200.3.16/28', 0)).toThrow(/slot 0/);
    expect(() => replicaAddress('10.200.3.16/29', 1)).toThrow(/no room for a node anchor.*PROXY_SUBNET_PREFIX to 28 or less/);
  });

  it("reads the slot from a replicated service's task name, and none from a global service's", () => {
    expect(slotOf('ctll_api-backend.2.p8y3k1mlz0qv9w7x6u5t4s3r2')).toBe(2);
    expect(slotOf('my.dotted.service.1.abc')).toBe(1);
    expect(slotOf('ctll_api-backend.wptpw75jig9k47zs7hxxnrojw.p8y3k1mlz0qv9w7x6u5t4s3r2')).toBeUndefined();
    expect(slotOf(undefined)).toBeUndefined();
    expect(slotOf('plain-name')).toBeUndefined();
  });
});
