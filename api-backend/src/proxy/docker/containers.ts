/**
 * Reading one proxy container as the engine describes it: where it listens and with which secret,
 * when it was made, what state to report, why it is not running. Plus removing one, patiently:
 * the engine answers "removal already in progress" while someone else removes the same container.
 */
import type Docker from 'dockerode';
import type { ProxyEndpoint, ProxyHandle, ProxyState } from '../driver';
import { classify, ignoringGone } from './errors';
import { PROXY_PORT } from './spec';
import { LABELS, networkName } from '../naming';

/** The proxy's address on its own network and the secret it was started with (from its environment). */
export function endpointOf(info: Docker.ContainerInspectInfo): ProxyEndpoint | undefined {
  const ownerHash = info.Config.Labels?.[LABELS.owner];
  const host = ownerHash ? info.NetworkSettings.Networks[networkName(ownerHash)]?.IPAddress : undefined;
  const secret = info.Config.Env?.find((entry) => entry.startsWith('PROXY_SECRET='))?.slice('PROXY_SECRET='.length);
  return host && secret ? { host, port: PROXY_PORT, secret } : undefined;
}

/** Our created label, else the engine's own timestamp (ISO text or epoch milliseconds). */
export function createdOf(labels: Record<string, string> | undefined, engine: string | number): Date {
  const labelled = Date.parse(labels?.[LABELS.created] ?? '');
  return new Date(Number.isFinite(labelled) ? labelled : typeof engine === 'number' ? engine : Date.parse(engine));
}

/**
 * The handle for an inspected container. Running and reachable is "running"; while this process
 * is still creating it (not yet answering /health), "starting"; anything else is "stopped", which
 * the manager answers by removing it before starting anew.
 */
export function handleOf(info: Docker.ContainerInspectInfo, ownerHash: string, creating: boolean): ProxyHandle {
  const live = info.State.Running && !info.State.Paused && !info.State.Restarting;
  const endpoint = live ? endpointOf(info) : undefined;
  const state: ProxyState = creating && (endpoint || info.State.Status === 'created') ? 'starting' : endpoint ? 'running' : 'stopped';
  return { ownerHash, id: info.Id, state, createdAt: createdOf(info.Config.Labels, info.Created), ...(state === 'running' ? { endpoint } : {}) };
}

/** Null while the container runs, else why it does not (for a failed start's message). */
export async function whyNotRunning(docker: Docker, containerId: string): Promise<string | null> {
  const info = await ignoringGone(() => docker.getContainer(containerId).inspect());
  if (!info) return 'container vanished during start-up';
  const state = info.State;
  if (state.Running) return null;
  const extra = `${state.OOMKilled ? ', out of memory' : ''}${state.Error ? `, ${state.Error}` : ''}`;
  return `container ${state.Status} during start-up (exit code ${state.ExitCode}${extra})`;
}

/** Force-removes a container; gone already is fine, and a removal in progress elsewhere is waited out. */
export async function removeContainer(container: Docker.Container, patienceMs = 10_000): Promise<void> {
  const deadline = Date.now() + patienceMs;
  for (;;) {
    try {
      await ignoringGone(() => container.remove({ force: true }));
      return;
    } catch (error) {
      if (classify(error) !== 'conflict' || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
