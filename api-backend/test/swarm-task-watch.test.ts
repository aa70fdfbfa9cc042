import { TaskWatch } from '../src/proxy/swarm-task-watch';
import type { SwarmTask } from '../src/proxy/swarm-tasks';

const task = (serviceId: string, state: string, extra: Partial<SwarmTask['Status']> = {}): SwarmTask => ({
  ID: `task-${serviceId}`,
  ServiceID: serviceId,
  CreatedAt: new Date().toISOString(),
  DesiredState: 'running',
  Status: { State: state, ContainerStatus: { ContainerID: state === 'running' ? `ctr-${serviceId}` : undefined }, ...extra },
});

/** An engine whose services' task states the test sets; records each listing's services. */
function engine() {
  const states = new Map<string, SwarmTask>();
  const listings: string[][] = [];
  const list = async (serviceIds: string[]) => {
    listings.push([...serviceIds].sort());
    return serviceIds.flatMap((id) => (states.has(id) ? [states.get(id)!] : []));
  };
  return { states, listings, list };
}

describe('waiting for new proxy services to run (swarm)', () => {
  it('serves every start in flight with one task listing per look, and each start hears of its own task', async () => {
    const e = engine();
    const watch = new TaskWatch(e.list, 5);
    const starts = ['s1', 's2', 's3'].map((id) => watch.running(id, 10_000));
    await new Promise((resolve) => setTimeout(resolve, 30));
    e.states.set('s2', task('s2', 'running'));
    expect((await starts[1]).Status.ContainerStatus?.ContainerID).toBe('ctr-s2');
    e.states.set('s1', task('s1', 'running'));
    e.states.set('s3', task('s3', 'running'));
    expect((await Promise.all(starts)).map((t) => t.ServiceID)).toEqual(['s1', 's2', 's3']);
    // Never one listing per start: a look lists every service still waiting, together, and no other.
    expect(e.listings).toContainEqual(['s1', 's2', 's3']);
    expect(e.listings.at(-1)).toEqual(['s1', 's3']);
  });

  it('fails a start at once with the engine reason when its task ended, and the others keep waiting', async () => {
    const e = engine();
    const watch = new TaskWatch(e.list, 5);
    e.states.set('bad', task('bad', 'rejected', { Err: 'no suitable node' }));
    const good = watch.running('good', 10_000);
    await expect(watch.running('bad', 10_000)).rejects.toThrow('StreamingProxy failed to start: task rejected: no suitable node');
    e.states.set('good', task('good', 'running'));
    expect((await good).ServiceID).toBe('good');
  });

  it('fails a start whose task never runs at its timeout, naming the state it is stuck in', async () => {
    const e = engine();
    const watch = new TaskWatch(e.list, 5);
    e.states.set('slow', task('slow', 'preparing'));
    await expect(watch.running('slow', 50)).rejects.toThrow('no task running within 50 ms (preparing); the node is slow to prepare tasks: raise PROXY_START_TIMEOUT_MS');
    // No task at all is a slow manager (a task no node may take still exists, as pending).
    await expect(watch.running('unscheduled', 50)).rejects.toThrow('no task running within 50 ms (no task created yet); the manager is slow to schedule: raise PROXY_START_TIMEOUT_MS');
    e.states.set('nowhere', task('nowhere', 'pending', { Err: 'no suitable node (scheduling constraints not satisfied on 1 node)' }));
    await expect(watch.running('nowhere', 50)).rejects.toThrow("(pending: no suitable node (scheduling constraints not satisfied on 1 node)); check PROXY_PLACEMENT against the nodes' labels");
  });

  it('rides out a failed listing and fails with the engine error only at the timeout', async () => {
    let calls = 0;
    const watch = new TaskWatch(async (ids) => {
      calls += 1;
      if (calls === 1) throw new Error('connect ECONNREFUSED');
      return ids.map((id) => task(id, 'running'));
    }, 5);
    expect((await watch.running('s', 10_000)).ServiceID).toBe('s');
    const down = new TaskWatch(async () => Promise.reject(new Error('connect ECONNREFUSED')), 5);
    await expect(down.running('s', 30)).rejects.toThrow('ECONNREFUSED');
  });
});
