import { KeyedLock } from '../src/proxy/keyed-lock';

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('KeyedLock', () => {
  it('runs work for one key one at a time, in arrival order', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    let inside = 0;
    let maxInside = 0;
    const work = (name: string) => async () => {
      inside += 1;
      maxInside = Math.max(maxInside, inside);
      log.push(`start ${name}`);
      await tick();
      log.push(`end ${name}`);
      inside -= 1;
      return name;
    };
    const results = await Promise.all(['a', 'b', 'c'].map((name) => lock.run('user', work(name))));
    expect(results).toEqual(['a', 'b', 'c']);
    expect(maxInside).toBe(1);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  it('lets different keys run at the same time', async () => {
    const lock = new KeyedLock();
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      ['x', 'y'].map((key) =>
        lock.run(key, async () => {
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          await tick();
          inside -= 1;
        }),
      ),
    );
    expect(maxInside).toBe(2);
  });

  it('keeps going after a failure and forgets drained keys', async () => {
    const lock = new KeyedLock();
    await expect(lock.run('k', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(lock.run('k', async () => 'next')).resolves.toBe('next');
    await tick();
    expect(lock.pending).toBe(0);
  });
});
