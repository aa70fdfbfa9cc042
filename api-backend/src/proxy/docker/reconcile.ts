/**
 * Decides, from what the engine lists, what the docker driver should do with each labelled
 * resource; the driver then does it. Kept free of engine calls so the rules read in one place:
 *
 * - a running proxy container is adopted (it keeps serving; api-backend may need to rejoin its net),
 *   unless its protocol label (LABELS.protocol) is missing or older than this api-backend's
 *   PROTOCOL_VERSION: then it is retired (removed; the user's next request starts a fresh one).
 *   One labelled newer is neither adopted nor retired: a newer replica sharing the engine (a rolling
 *   upgrade) made it and uses it, and retiring each other's proxies every sweep would cut users off
 *   until the upgrade ends; should this replica's user need a proxy, the create replaces it;
 * - a container that exited or died is dead: reported (if nobody has yet) and removed with its network;
 * - a container being removed is left to whoever removes it, and so is its network for now;
 * - a container that never started, or a network with no container, is half-made. It is removed
 *   once it is older than `halfMadeAfterMs`; younger ones may be a create in flight in another
 *   replica sharing the engine. Being older than this process is no sign a create was abandoned:
 *   a replica that restarts would otherwise kill every proxy its peers were starting just then.
 * Owners with a create in flight in this process are left alone.
 *
 * A missing protocol label means retire, not "probe once": only proxies made before the label
 * existed lack it, and those were never checked (an older api-backend left them, maybe from an older
 * pinned image). Probing would cost an HTTP call per such proxy, a way into its network, and a
 * per-process memory of what was probed, for a case that arises once, at the upgrade that brings
 * the label; retiring costs each user one tunnel reconnect then (the bridge reconnects by itself)
 * and keeps the rule "a running proxy we use was verified" true without exceptions.
 */
import type Docker from 'dockerode';
import { PROTOCOL_VERSION } from '@ctll/protocol';
import { LABELS } from '../naming';

export interface ReconcileInput {
  containers: Docker.ContainerInfo[];
  networks: Docker.NetworkInspectInfo[];
  now: number;
  halfMadeAfterMs: number;
  busy: (ownerHash: string) => boolean;
}

export interface ReconcilePlan {
  adopt: Array<{ ownerHash: string; containerId: string }>;
  /** Running proxies of an older (or an unrecorded) protocol version: removed, never used. */
  retire: Array<{ ownerHash: string; containerId: string; protocol: string | undefined }>;
  dead: Array<{ ownerHash: string; containerId: string; status: string }>;
  /** Owners whose leftover container and/or network go. */
  halfMade: string[];
}

export function planReconcile(input: ReconcileInput): ReconcilePlan {
  const plan: ReconcilePlan = { adopt: [], retire: [], dead: [], halfMade: [] };
  const withContainer = new Set<string>();
  const stale = (createdMs: number) => input.now - createdMs >= input.halfMadeAfterMs;

  for (const container of input.containers) {
    const ownerHash = container.Labels?.[LABELS.owner];
    if (!ownerHash) continue;
    withContainer.add(ownerHash);
    if (input.busy(ownerHash)) continue;
    if (container.State === 'running') {
      const protocol = container.Labels[LABELS.protocol];
      if (speaksOurProtocol(container.Labels)) plan.adopt.push({ ownerHash, containerId: container.Id });
      else if (!(Number(protocol) > PROTOCOL_VERSION)) plan.retire.push({ ownerHash, containerId: container.Id, protocol });
    } else if (container.State === 'removing') {
      // Someone (a stop here or in another replica) is removing it: reporting it as dead would
      // audit a crash that did not happen. A removal that fails leaves it "dead", handled below.
      continue;
    } else if (container.State === 'exited' || container.State === 'dead') {
      plan.dead.push({ ownerHash, containerId: container.Id, status: container.Status });
    } else if (stale(createdAt(container.Labels, container.Created * 1000))) {
      plan.halfMade.push(ownerHash); // "created" (never started), "paused", "restarting"
    }
  }

  for (const network of input.networks) {
    const ownerHash = network.Labels?.[LABELS.owner];
    if (!ownerHash || withContainer.has(ownerHash) || input.busy(ownerHash)) continue;
    if (stale(createdAt(network.Labels, Date.parse(network.Created)))) plan.halfMade.push(ownerHash);
  }
  return plan;
}

/** Whether a proxy's labels say it was verified to speak this api-backend's protocol version. */
export function speaksOurProtocol(labels: Record<string, string> | undefined): boolean {
  return labels?.[LABELS.protocol] === String(PROTOCOL_VERSION);
}

/** Our created label, else the engine's own timestamp. */
function createdAt(labels: Record<string, string> | undefined, engineMs: number): number {
  const labelled = Date.parse(labels?.[LABELS.created] ?? '');
  return Number.isFinite(labelled) ? labelled : engineMs;
}
