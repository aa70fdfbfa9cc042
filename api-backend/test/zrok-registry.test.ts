import winston from 'winston';
import { BadRequestError, NotFoundError } from '@ctll/protocol';
import { ShareRegistry } from '../src/zrok/registry';

describe('ShareRegistry', () => {
  let now: number;
  let lines: string[];
  let registry: ShareRegistry;
  const alice = 'a'.repeat(16);
  const bob = 'b'.repeat(16);
  const share = (n = 1) => ({ publicUrl: `https://s${n}.share.zrok.io`, shareToken: `secret-token-${n}`, localUrl: 'http://127.0.0.1:11434' });

  beforeEach(() => {
    now = 1_000_000;
    lines = [];
    const logger = winston.createLogger({
      transports: [new winston.transports.Console({ silent: true })],
      format: winston.format.printf((info) => {
        lines.push(JSON.stringify(info));
        return '';
      }),
    });
    registry = new ShareRegistry({ ttlMs: 9000, maxSharesPerUser: 2, now: () => now }, logger);
  });

  it('keeps a share alive while it heartbeats and drops it one TTL after the last beat', () => {
    const { record } = registry.register(alice, share());
    expect(registry.heartbeatIntervalMs).toBe(3000);
    now += 8000;
    registry.heartbeat(alice, record.tunnelId);
    now += 8000;
    expect(registry.list(alice).map((r) => r.tunnelId)).toEqual([record.tunnelId]);
    now += 1000;
    expect(registry.list(alice)).toEqual([]);
    expect(() => registry.heartbeat(alice, record.tunnelId)).toThrow(NotFoundError);
  });

  it('frees expired shares on a sweep', () => {
    registry.register(alice, share(1));
    registry.register(bob, share(2));
    now += 9000;
    expect(registry.sweep()).toBe(2);
    expect(registry.sweep()).toBe(0);
  });

  it("treats another user's tunnel id exactly like an unknown one", () => {
    const { record } = registry.register(alice, share());
    for (const act of [() => registry.get(bob, record.tunnelId), () => registry.heartbeat(bob, record.tunnelId), () => registry.unregister(bob, record.tunnelId)]) {
      expect(act).toThrow(NotFoundError);
    }
    expect(registry.list(bob)).toEqual([]);
    expect(registry.get(alice, record.tunnelId).publicUrl).toBe(share().publicUrl);
  });

  it('re-registering the same URL refreshes the share and keeps its id; the limit counts distinct shares', () => {
    const first = registry.register(alice, share(1));
    now += 5000;
    const again = registry.register(alice, { ...share(1), shareToken: undefined });
    expect(again).toMatchObject({ created: false });
    expect(again.record.tunnelId).toBe(first.record.tunnelId);
    expect(again.record.shareToken).toBeUndefined();
    expect(again.record.expiresAt).toBe(now + 9000);
    now += 1;
    registry.register(alice, share(2));
    expect(() => registry.register(alice, share(3))).toThrow(BadRequestError);
    expect(registry.list(alice)[0].publicUrl).toBe(share(2).publicUrl); // most recently heard from first
  });

  it('never logs share URLs or tokens', () => {
    const { record } = registry.register(alice, share());
    registry.unregister(alice, record.tunnelId);
    registry.register(alice, share(2));
    now += 10_000;
    registry.sweep();
    expect(lines.length).toBe(4); // registered, unregistered, registered, expired
    for (const line of lines) {
      expect(line).not.toMatch(/zrok\.io|secret-token|127\.0\.0\.1/);
      expect(line).toContain(alice);
    }
  });
});
