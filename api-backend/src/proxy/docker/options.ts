/**
 * The docker driver's options, every default written out in one place. Settings from the
 * environment (config.ts) arrive through app.ts; the rest are tuning knobs whose defaults suit a
 * VPS: a pids limit that leaves a Node program room for its threads, a tmpfs no bigger than the
 * proxy could ever need, a three-second stop grace, two 10 MB log files per proxy.
 */
import type Docker from 'dockerode';
import type { Logger } from '../../logger';
import type { ProxyExitListener } from '../driver';
import type { NetworkModeSetting } from './placement';
import type { ProxyEgress, ProxySpecOptions } from './spec';

export interface DockerDriverOptions {
  image: string;
  memoryMb: number;
  cpus: number;
  subnetPool: string;
  startTimeoutMs: number;
  /** The proxy's environment; `backendAddress` is where it reaches api-backend on its network. */
  env: (ownerHash: string, secret: string, backendAddress: string) => Record<string, string>;
  /** The secret a new proxy gets (proxy-secrets.ts): derived from the owner, so it can be checked without the engine. */
  secretFor: (ownerHash: string) => string;
  logger: Logger;
  onExit: ProxyExitListener;
  /** dockerode connection; empty means DOCKER_HOST, else /var/run/docker.sock. */
  dockerOptions?: Docker.DockerOptions;
  /** Which deployment's resources these are, when several api-backends share one engine. */
  scope?: string;
  subnetPrefix?: number;
  /** How api-backend reaches proxies: `auto` asks the engine whether we run in a container (docker/placement.ts). */
  networkMode?: NetworkModeSetting;
  /** api-backend's own container; setting it implies container mode. Default: found by our hostname (Docker sets it to the short id). */
  selfContainer?: string;
  egress?: ProxyEgress;
  pidsLimit?: number;
  tmpfsMb?: number;
  stopGraceSeconds?: number;
  logMaxSize?: string;
  logMaxFiles?: number;
  halfMadeAfterMs?: number;
  sweepIntervalMs?: number;
  /** Socket idle limit for engine calls, so a hung daemon fails calls instead of hanging them. */
  apiTimeoutMs?: number;
  healthTimeoutMs?: number;
  /** How long a running proxy's endpoint is served without asking the engine (events drop it sooner); 0 asks every time. */
  endpointCacheMs?: number;
}

export const DOCKER_DRIVER_DEFAULTS = Object.freeze({
  scope: 'default',
  subnetPrefix: 28,
  networkMode: 'auto' as NetworkModeSetting,
  egress: 'internet' as ProxyEgress,
  pidsLimit: 64,
  tmpfsMb: 16,
  stopGraceSeconds: 3,
  logMaxSize: '10m',
  logMaxFiles: 2,
  halfMadeAfterMs: 60_000,
  sweepIntervalMs: 60_000,
  apiTimeoutMs: 60_000,
  healthTimeoutMs: 3_000,
  endpointCacheMs: 5_000,
});

export type ResolvedDockerOptions = DockerDriverOptions & typeof DOCKER_DRIVER_DEFAULTS;

/** The caller's options over the defaults; an option given as undefined keeps its default. */
export function resolveDockerOptions(options: DockerDriverOptions): ResolvedDockerOptions {
  const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  return { ...DOCKER_DRIVER_DEFAULTS, ...given } as ResolvedDockerOptions;
}

/** What the container and network bodies need (docker/spec.ts). */
export function specOf(o: ResolvedDockerOptions): ProxySpecOptions {
  return {
    scope: o.scope,
    image: o.image,
    memoryMb: o.memoryMb,
    cpus: o.cpus,
    pidsLimit: o.pidsLimit,
    tmpfsMb: o.tmpfsMb,
    stopGraceSeconds: o.stopGraceSeconds,
    logMaxSize: o.logMaxSize,
    logMaxFiles: o.logMaxFiles,
    egress: o.egress,
  };
}
