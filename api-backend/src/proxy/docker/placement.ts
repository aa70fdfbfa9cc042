/**
 * Where api-backend runs relative to the Docker engine, which decides how it reaches proxies
 * (docker/networks.ts): as a process on the host (it routes to every bridge network's addresses)
 * or as a container (it must join each user's network). PROXY_NETWORK_MODE names it, or `auto`
 * asks the engine: we are a container when a container marker file exists *and* the engine has a
 * container whose hostname is ours. The marker alone is not enough: a CI sandbox may carry
 * /.dockerenv while running the engine itself, and then it is the host.
 */
import fs from 'node:fs';
import os from 'node:os';
import type Docker from 'dockerode';
import { ignoringGone } from './errors';

export type NetworkMode = 'host' | 'container';
export type NetworkModeSetting = NetworkMode | 'auto';

export interface Placement {
  mode: NetworkMode;
  /** api-backend's own container (id or name), in container mode. */
  self?: string;
}

export interface PlacementProbe {
  markers: string[];
  hostname: string;
}

const DEFAULT_PROBE: PlacementProbe = { markers: ['/.dockerenv', '/run/.containerenv'], hostname: os.hostname() };

/** Resolves the setting; asks the engine only for `auto` (and then rejects while it is unreachable). */
export async function detectPlacement(docker: Docker, setting: NetworkModeSetting, selfContainer?: string, probe = DEFAULT_PROBE): Promise<Placement> {
  if (setting === 'host') return { mode: 'host' };
  if (setting === 'container' || selfContainer) return { mode: 'container', self: selfContainer ?? probe.hostname };
  if (!probe.markers.some((marker) => fs.existsSync(marker))) return { mode: 'host' };
  const info = await ignoringGone(() => docker.getContainer(probe.hostname).inspect());
  return info && info.Config.Hostname === probe.hostname ? { mode: 'container', self: info.Id } : { mode: 'host' };
}

export function describePlacement(placement: Placement): string {
  return placement.mode === 'host' ? 'api-backend on the Docker host: reaches proxies by address' : `api-backend in container ${placement.self?.slice(0, 12)}: joins each user network`;
}
