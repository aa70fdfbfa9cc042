/**
 * Names and labels of a user's proxy resources, in one place. `<h>` is the first 16 hex characters
 * of SHA-256(userId): collision-free in practice, stable across restarts, and it never reveals the
 * user id to Docker, logs or the audit tables.
 */
import { createHash } from 'node:crypto';

/** Hashes kept: every relayed request needs its caller's hash (its proxy, its audit activity). */
const MAX_REMEMBERED = 4096;
const remembered = new Map<string, string>();

export function userHash(userId: string): string {
  const known = remembered.get(userId);
  if (known !== undefined) return known;
  const hash = createHash('sha256').update(userId, 'utf8').digest('hex').slice(0, 16);
  // A Map iterates in insertion order: when full, forget the oldest entry.
  if (remembered.size >= MAX_REMEMBERED) remembered.delete(remembered.keys().next().value!);
  remembered.set(userId, hash);
  return hash;
}

export const networkName = (hash: string): string => `ctll-net-${hash}`;
export const containerName = (hash: string): string => `ctll-proxy-${hash}`;

/** Labels on every container and network we create: Docker is the record of what exists. */
export const LABELS = {
  managed: 'io.cloudtolocalllm.managed',
  owner: 'io.cloudtolocalllm.owner',
  role: 'io.cloudtolocalllm.role',
  created: 'io.cloudtolocalllm.created',
  image: 'io.cloudtolocalllm.image',
  subnet: 'io.cloudtolocalllm.subnet',
  /** Which api-backend deployment owns the resource (PROXY_SCOPE). */
  scope: 'io.cloudtolocalllm.scope',
  /**
   * The api-backend/proxy protocol version (PROTOCOL_VERSION) the proxy was verified to speak when
   * it was made: a proxy that fails that check is removed, so a running one with the label speaks it.
   * The sweep retires running proxies whose label differs (docker/reconcile.ts).
   */
  protocol: 'io.cloudtolocalllm.protocol',
} as const;
