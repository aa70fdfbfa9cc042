/**
 * Reading a proxy service's tasks as a swarm manager lists them: which task is the current one,
 * whether it runs, why it does not, its address on the user's overlay and the secret it was
 * started with. The engine's task objects are untyped in dockerode; `SwarmTask` names the fields
 * used here. Also the mapping of services onto the docker driver's reconcile rules
 * (docker/reconcile.ts), so both drivers adopt, report and sweep by the same rules.
 */
import type Docker from 'dockerode';
import { LABELS, networkName } from './naming';

export interface SwarmTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  CreatedAt: string;
  DesiredState: string;
  Spec?: { ContainerSpec?: { Env?: string[]; Labels?: Record<string, string> } };
  Status: { State: string; Err?: string; Message?: string; ContainerStatus?: { ContainerID?: string; ExitCode?: number } };
  NetworksAttachments?: Array<{ Network: { ID: string; Spec?: { Name?: string } }; Addresses?: string[] }>;
}

/** States a task passes through before it runs; anything else past `running` is an end. */
const PENDING = new Set(['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting']);

export type TaskPhase = 'running' | 'pending' | 'ended';

export function phaseOf(task: SwarmTask | undefined): TaskPhase {
  if (!task) return 'pending';
  if (task.Status.State === 'running') return 'running';
  return PENDING.has(task.Status.State) ? 'pending' : 'ended';
}

/** The service's newest task (one replica, no restarts: there is at most one that matters). */
export function currentTask(tasks: SwarmTask[], serviceId: string): SwarmTask | undefined {
  return tasks
    .filter((task) => task.ServiceID === serviceId)
    .sort((a, b) => Date.parse(b.CreatedAt) - Date.parse(a.CreatedAt))[0];
}

export function containerIdOf(task: SwarmTask | undefined): string | undefined {
  return task?.Status.ContainerStatus?.ContainerID || undefined;
}

/** The task's address on the owner's overlay, without the prefix length. */
export function overlayAddress(task: SwarmTask, ownerHash: string): string | undefined {
  const attachment = task.NetworksAttachments?.find((a) => a.Network.Spec?.Name === networkName(ownerHash));
  return attachment?.Addresses?.[0]?.split('/')[0];
}

export function secretOf(task: SwarmTask): string | undefined {
  return task.Spec?.ContainerSpec?.Env?.find((entry) => entry.startsWith('PROXY_SECRET='))?.slice('PROXY_SECRET='.length);
}

/** Why a task that ended did (for a failed start's message and for onExit). */
export function whyEnded(task: SwarmTask): string {
  const code = task.Status.ContainerStatus?.ExitCode;
  const err = task.Status.Err ? `: ${task.Status.Err}` : '';
  return `task ${task.Status.State}${code !== undefined && code !== 0 ? ` (exit code ${code})` : ''}${err}`;
}

/**
 * Services and their current tasks, as the container listing docker/reconcile.ts plans from: a
 * running task is a running container, an ended one an exited container, a service whose task is
 * pending (or which has none) a container that never started.
 */
export function asContainers(services: Docker.Service[], tasks: SwarmTask[]): Docker.ContainerInfo[] {
  return services.map((service) => {
    const task = currentTask(tasks, service.ID);
    const phase = phaseOf(task);
    const labels = service.Spec?.Labels ?? {};
    return {
      Id: containerIdOf(task) ?? task?.ID ?? service.ID,
      Labels: labels,
      State: phase === 'running' ? 'running' : phase === 'ended' ? 'exited' : 'created',
      Status: task ? whyEnded(task) : 'no task yet',
      Created: Math.floor(Date.parse(labels[LABELS.created] ?? service.CreatedAt ?? '') / 1000),
    } as unknown as Docker.ContainerInfo;
  });
}
