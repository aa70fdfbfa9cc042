/**
 * Waits for new proxy services' tasks to run: every start in flight on this api-backend shares one
 * task listing per tick, instead of each start listing its own service's tasks ten times a second
 * (twenty starts at once made two hundred listings a second of a manager that was busy starting
 * them). The engine has no task events to follow instead (Docker 20.10: container events only, and
 * only for this node), so this polls.
 */
import { startFailed } from './docker/errors';
import { containerIdOf, currentTask, phaseOf, whyEnded, type SwarmTask } from './swarm-tasks';

/** How often the starting tasks are looked at; a task runs some 0.5-2 s after its service is made. */
export const TASK_POLL_MS = 100;

interface Waiter {
  serviceId: string;
  timeoutMs: number;
  deadline: number;
  last?: SwarmTask;
  resolve: (task: SwarmTask) => void;
  reject: (error: Error) => void;
}

export class TaskWatch {
  private readonly waiters = new Set<Waiter>();
  private polling = false;

  constructor(
    /** The tasks of these services, in one engine call. */
    private readonly listTasks: (serviceIds: string[]) => Promise<SwarmTask[]>,
    private readonly intervalMs = TASK_POLL_MS,
  ) {}

  /** The service's task once it runs; fails with the engine's reason when it ended, or at the timeout. */
  running(serviceId: string, timeoutMs: number): Promise<SwarmTask> {
    return new Promise<SwarmTask>((resolve, reject) => {
      this.waiters.add({ serviceId, timeoutMs, deadline: Date.now() + timeoutMs, resolve, reject });
      if (!this.polling) void this.poll();
    });
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      while (this.waiters.size > 0) {
        const waiting = [...this.waiters];
        let tasks: SwarmTask[] | undefined;
        let failure: Error | undefined;
        try {
          tasks = await this.listTasks([...new Set(waiting.map((waiter) => waiter.serviceId))]);
        } catch (error) {
          failure = error as Error;
        }
        const now = Date.now();
        for (const waiter of waiting) {
          if (tasks) waiter.last = currentTask(tasks, waiter.serviceId);
          const phase = phaseOf(waiter.last);
          if (tasks && phase === 'running' && containerIdOf(waiter.last)) this.settle(waiter, () => waiter.resolve(waiter.last!));
          else if (tasks && phase === 'ended') this.settle(waiter, () => waiter.reject(startFailed(whyEnded(waiter.last!))));
          else if (now > waiter.deadline) this.settle(waiter, () => waiter.reject(failure ?? startFailed(notRunning(waiter))));
        }
        if (this.waiters.size > 0) await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
      }
    } finally {
      this.polling = false;
    }
  }

  private settle(waiter: Waiter, outcome: () => void): void {
    this.waiters.delete(waiter);
    outcome();
  }
}

function notRunning({ timeoutMs, last }: Waiter): string {
  const raise = 'raise PROXY_START_TIMEOUT_MS';
  // Even a task no node can take exists (pending, "no suitable node"): none at all is a slow manager.
  if (!last) return `no task running within ${timeoutMs} ms (no task created yet); the manager is slow to schedule: ${raise}`;
  const state = `${last.Status.State}${last.Status.Err ? `: ${last.Status.Err}` : ''}`;
  if (/no suitable node/i.test(last.Status.Err ?? '')) return `no task running within ${timeoutMs} ms (${state}); check PROXY_PLACEMENT against the nodes' labels`;
  // Preparing and starting are the node's work, which a busy node does slowly (README, "Growing from one host to a swarm").
  return `no task running within ${timeoutMs} ms (${state}); the node is slow to prepare tasks: ${raise}`;
}
