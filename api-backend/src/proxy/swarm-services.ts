/**
 * The proxy services as a swarm manager has them: find one by its owner (never one of another
 * scope), list them with their tasks, wait for a new one's task to run, and remove one, waiting
 * until its task has stopped: the manager answers a remove at once and stops the task after, and
 * a remove of ours, like the docker driver's, returns when the proxy is gone.
 */
import type Docker from 'dockerode';
import { ignoringGone } from './docker/errors';
import { isOurs, managedFilter, SCOPE_LABEL } from './docker/spec';
import { containerName } from './naming';
import { currentTask, phaseOf, whyEnded, type SwarmTask } from './swarm-tasks';
import { TaskWatch } from './swarm-task-watch';

/** How long a removed service's task, or the node's copy of a removed overlay, may linger. */
const PATIENCE_MS = 30_000;

export class ProxyServices {
  private readonly filter: { label: string[] };
  /** One task listing per tick for every start in flight (swarm-task-watch.ts). */
  private readonly starting: TaskWatch;

  constructor(
    private readonly docker: Docker,
    private readonly scope: string,
  ) {
    this.filter = { label: managedFilter(scope, 'proxy') };
    this.starting = new TaskWatch(async (serviceIds) => (await this.docker.listTasks({ filters: { service: serviceIds } })) as SwarmTask[]);
  }

  /** The owner's service, if any; one another api-backend made under this name is never touched. */
  async inspect(ownerHash: string): Promise<Docker.Service | undefined> {
    const service = (await ignoringGone(() => this.docker.getService(containerName(ownerHash)).inspect())) as Docker.Service | undefined;
    const labels = service?.Spec?.Labels;
    if (service && !isOurs(labels, this.scope)) {
      throw new Error(`service ${containerName(ownerHash)} exists but was not made by this api-backend (PROXY_SCOPE=${labels?.[SCOPE_LABEL] ?? 'none'}); remove it`);
    }
    return service;
  }

  /** Every proxy service of this scope, and their tasks. */
  async listWithTasks(): Promise<[Docker.Service[], SwarmTask[]]> {
    const services = await this.docker.listServices({ filters: this.filter });
    if (services.length === 0) return [services, []];
    const tasks = (await this.docker.listTasks({ filters: { service: services.map((s) => s.ID) } })) as SwarmTask[];
    return [services, tasks];
  }

  async tasksOf(serviceId: string): Promise<SwarmTask[]> {
    return (await this.docker.listTasks({ filters: { service: [serviceId] } })) as SwarmTask[];
  }

  async remove(serviceId: string): Promise<void> {
    await ignoringGone(() => this.docker.getService(serviceId).remove());
    await patiently(async () => (await this.docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.service.id=${serviceId}`] } })).length === 0);
  }

  /** Waits for the new service's task to run, or fails with the engine's reason. */
  waitForTask(serviceId: string, timeoutMs: number): Promise<SwarmTask> {
    return this.starting.running(serviceId, timeoutMs);
  }

  async whyNotRunning(serviceId: string): Promise<string | null> {
    const task = currentTask(await this.tasksOf(serviceId), serviceId);
    if (!task) return 'service vanished during start-up';
    return phaseOf(task) === 'ended' ? whyEnded(task) : null;
  }
}

/**
 * Retries `done` until it holds: a removed service's task lets go of the overlay, and the node's
 * copy of a removed overlay goes, a moment after the manager answered. The last failure is thrown.
 */
export async function patiently(done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    try {
      if (await done()) return;
      if (Date.now() > deadline) throw new Error(`still there after ${PATIENCE_MS} ms`);
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
