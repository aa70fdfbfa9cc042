import { addressIn, formatCidr, parseCidr, SubnetPool } from '../src/proxy/subnet-pool';

describe('SubnetPool', () => {
  it('parses and prints CIDRs, and names host bits it refuses', () => {
    expect(formatCidr(parseCidr('10.200.0.0/16'))).toBe('10.200.0.0/16');
    expect(() => parseCidr('10.200.0.1/16')).toThrow(/did you mean 10\.200\.0\.0\/16/);
    expect(() => parseCidr('10.300.0.0/16')).toThrow(/not a valid/);
    expect(() => parseCidr('fd00::/64')).toThrow(/not an IPv4 CIDR/);
    expect(formatCidr(parseCidr('10.200.0.1/16', 'loose'))).toBe('10.200.0.0/16');
    expect(addressIn('10.200.3.16/28', 1)).toBe('10.200.3.17');
  });

  it('holds thousands of networks: a /16 in /28 blocks is 4096', () => {
    expect(new SubnetPool('10.200.0.0/16', 28).blocks).toBe(4096);
    expect(new SubnetPool('10.200.0.0/16', 29).blocks).toBe(8192);
    expect(() => new SubnetPool('10.200.0.0/16', 30)).toThrow(/between/);
    expect(() => new SubnetPool('10.200.0.0/24', 16)).toThrow(/between/);
  });

  it('hands out each block once while reservations are in flight, and none when the pool is full', () => {
    const pool = new SubnetPool('10.200.0.0/26', 28); // 4 blocks
    const held = [0, 1, 2, 3].map(() => pool.reserve([])!);
    expect(new Set(held.map((r) => r.subnet))).toEqual(new Set(['10.200.0.0/28', '10.200.0.16/28', '10.200.0.32/28', '10.200.0.48/28']));
    expect(pool.reserve([])).toBeNull();
    held[2].release();
    held[2].release(); // twice is harmless
    expect(pool.reserve([])!.subnet).toBe(held[2].subnet);
  });

  it("skips blocks the engine already uses, ours or anybody's that overlaps, and excluded ones", () => {
    const pool = new SubnetPool('10.200.0.0/26', 28);
    // A wide foreign network covers blocks 0-1, one of ours block 3, an exclusion block 2: nothing left.
    expect(pool.reserve(['10.200.0.0/27', '10.200.0.48/28', '172.17.0.0/16', 'fd00::/64'], ['10.200.0.32/28'])).toBeNull();
    expect(pool.reserve(['10.200.0.0/27', '10.200.0.48/28'])!.subnet).toBe('10.200.0.32/28');
    // A network wider than the whole pool takes all of it.
    expect(new SubnetPool('10.200.0.0/26', 28).reserve(['10.0.0.0/8'])).toBeNull();
  });

  it('spreads picks over the pool instead of always taking the first free block', () => {
    const picks = new Set<string>();
    for (let i = 0; i < 20; i += 1) {
      const reservation = new SubnetPool('10.200.0.0/16', 28).reserve([])!;
      picks.add(reservation.subnet);
    }
    expect(picks.size).toBeGreaterThan(10);
  });

  it('knows which subnets lie inside it', () => {
    const pool = new SubnetPool('10.200.0.0/16', 28);
    expect(pool.contains('10.200.7.16/28')).toBe(true);
    expect(pool.contains('10.201.0.0/28')).toBe(false);
    expect(pool.contains('10.0.0.0/8')).toBe(false);
  });
});
