import winston from 'winston';
import { ShareDirectory } from '../src/zrok/directory';
import type { DiscoveredShare } from '../src/zrok/discovery';
import type { HealthResult } from '../src/zrok/health-check';

const logger = winston.createLogger({ transports: [new winston.transports.Console({ silent: true })] });

function setup(initial: DiscoveredShare[]) {
  const state = { list: initial, pulls: 0, failing: false, health: new Map<string, HealthResult>(), now: 0 };
  const directory = new ShareDirectory(
    { intervalMs: 60_000, minRefreshMs: 1000, now: () => state.now },
    async () => {
      state.pulls += 1;
      if (state.failing) throw new Error('discover answered 503');
      return state.list;
    },
    async (url) => state.health.get(url.href) ?? { healthy: true },
    logger,
  );
  return { state, directory };
}

const share = (n: number, heardAt: number): DiscoveredShare => ({
  shareId: `zt${String(n).padStart(24, '0')}`,
  publicUrl: `https://s${n}.share.zrok.io/`,
  lastHeartbeatAt: new Date(heardAt).toISOString(),
});

describe('ShareDirectory', () => {
  it('uses the healthy share heard from most recently', async () => {
    const { state, directory } = setup([share(1, 1000), share(2, 2000)]);
    state.health.set('https://s2.share.zrok.io/', { healthy: false, error: 'ECONNREFUSED' });
    await directory.refresh();
    expect(directory.best()?.shareId).toBe(share(1, 0).shareId);
    expect(directory.status().shares.find((s) => s.shareId === share(2, 0).shareId)).toMatchObject({ healthy: false, error: 'ECONNREFUSED' });
    state.health.clear();
    await directory.refresh();
    expect(directory.best()?.shareId).toBe(share(2, 0).shareId);
  });

  it('looks again when a request finds no healthy share, at most once per minRefreshMs', async () => {
    const { state, directory } = setup([]);
    await directory.refresh();
    expect(state.pulls).toBe(1);
    state.list = [share(1, 1000)];
    expect(await directory.pick()).toBeUndefined(); // refreshed a moment ago
    expect(state.pulls).toBe(1);
    state.now += 1000;
    expect((await directory.pick())?.shareId).toBe(share(1, 0).shareId);
    expect(state.pulls).toBe(2);
    await directory.pick(); // a healthy share is known: no pull
    expect(state.pulls).toBe(2);
  });

  it('stops using a share that failed a request, and forgets one the registry dropped', async () => {
    const { state, directory } = setup([share(1, 1000)]);
    await directory.refresh();
    directory.markFailed(directory.best()!, 'ECONNRESET');
    expect(directory.best()).toBeUndefined();
    await directory.refresh();
    expect(directory.best()).toBeDefined();
    state.list = [];
    await directory.refresh();
    expect(directory.status().shares).toEqual([]);
  });

  it('keeps what it knew while api-backend cannot be asked', async () => {
    const { state, directory } = setup([share(1, 1000)]);
    await directory.refresh();
    state.failing = true;
    await directory.refresh();
    expect(directory.best()?.shareId).toBe(share(1, 0).shareId);
    expect(directory.status().discoveryError).toBe('discover answered 503');
  });
});
