import { StartGate } from '../src/proxy/start-gate';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('proxy starts taking turns', () => {
  it('runs at most its limit at once and the rest in the order they came, each as a place frees', async () => {
    const gate = new StartGate(2);
    const running = new Set<number>();
    const began: number[] = [];
    let most = 0;
    const finish = new Map<number, () => void>();
    const starts = [0, 1, 2, 3, 4].map((n) =>
      gate.run(async () => {
        running.add(n);
        began.push(n);
        most = Math.max(most, running.size);
        await new Promise<void>((resolve) => finish.set(n, resolve));
        running.delete(n);
        return n;
      }),
    );
    await tick();
    expect(began).toEqual([0, 1]);
    expect(gate.waiting).toBe(3);
    finish.get(1)!();
    await tick();
    await tick();
    expect(began).toEqual([0, 1, 2]);
    // Let every start end as soon as it runs.
    while (finish.size > 0 || began.length < 5) {
      for (const [n, end] of finish) {
        finish.delete(n);
        end();
      }
      await tick();
    }
    expect(await Promise.all(starts)).toEqual([0, 1, 2, 3, 4]);
    expect(began).toEqual([0, 1, 2, 3, 4]);
    expect(most).toBe(2);
    expect(gate.waiting).toBe(0);
  });

  it('frees the place of a start that failed', async () => {
    const gate = new StartGate(1);
    await expect(gate.run(async () => Promise.reject(new Error('no task running')))).rejects.toThrow('no task running');
    expect(await gate.run(async () => 'next one runs')).toBe('next one runs');
  });
});
