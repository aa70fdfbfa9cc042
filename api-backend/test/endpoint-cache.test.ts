/**
 * The endpoint cache's rules, on a controlled clock: entries expire, a forget wins over a read
 * that was in flight when it happened, and the cache stays bounded.
 */
import { EndpointCache } from '../src/proxy/endpoint-cache';
import type { ProxyEndpoint } from '../src/proxy/driver';

const at = (port: number): ProxyEndpoint => ({ host: '10.200.0.2', port, secret: `s${port}` });

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('EndpointCache', () => {
  let now = 1_000;
  const clock = () => now;

  it('keeps what a read found until it expires', async () => {
    const cache = new EndpointCache(5_000, 100, clock);
    expect(await cache.through('a', async () => at(1))).toEqual(at(1));
    now += 4_999;
    expect(cache.get('a')).toEqual(at(1));
    now += 1;
    expect(cache.get('a')).toBeUndefined();
  });

  it('does not keep "no proxy"', async () => {
    const cache = new EndpointCache(5_000, 100, clock);
    expect(await cache.through('a', async () => null)).toBeNull();
    expect(cache.get('a')).toBeUndefined();
  });

  it('does not store a read that was in flight when the owner was forgotten', async () => {
    const cache = new EndpointCache(5_000, 100, clock);
    const engine = deferred<ProxyEndpoint | null>();
    const read = cache.through('a', () => engine.promise);
    cache.forget('a'); // e.g. the container's "die" event arrives while the engine is answering
    engine.resolve(at(1));
    expect(await read).toEqual(at(1)); // the caller gets what the engine said...
    expect(cache.get('a')).toBeUndefined(); // ...but it is not served to the next one
    expect(await cache.through('a', async () => at(2))).toEqual(at(2));
    expect(cache.get('a')).toEqual(at(2)); // a read begun after the forget is kept
  });

  it('clear() drops everything, reads in flight included', async () => {
    const cache = new EndpointCache(5_000, 100, clock);
    await cache.through('a', async () => at(1));
    const engine = deferred<ProxyEndpoint | null>();
    const read = cache.through('b', () => engine.promise);
    cache.clear();
    engine.resolve(at(2));
    await read;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBeUndefined();
  });

  it('holds at most maxEntries, forgetting the least recently stored', async () => {
    const cache = new EndpointCache(5_000, 3, clock);
    for (const [owner, port] of [['a', 1], ['b', 2], ['c', 3], ['d', 4]] as const) await cache.through(owner, async () => at(port));
    expect(cache.size).toBe(3);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('d')).toEqual(at(4));
  });

  it('with a life of 0 stores nothing', async () => {
    const cache = new EndpointCache(0, 100, clock);
    await cache.through('a', async () => at(1));
    expect(cache.get('a')).toBeUndefined();
  });
});
