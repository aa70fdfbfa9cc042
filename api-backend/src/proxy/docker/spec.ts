/**
 * What a user's proxy network and container look like to the Docker engine, as plain create
 * bodies (no engine calls here). Every resource carries our labels, because the engine is the
 * record of what exists: the driver finds, adopts and sweeps by them.
 *
 * The container is locked down so that one user's proxy can hurt neither the host nor another
 * user: a hard memory cap without swap, a hard CPU quota (NanoCpus, not relative shares), a pids
 * limit, a read-only root with a small no-exec tmpfs, no capabilities, no privilege gain, uid
 * 1001, no published ports (api-backend reaches it on its own network), no restart policy (a dead
 * proxy is noticed and cleaned by the driver, not silently revived), and capped json-file logs.
 *
 * The network is a plain bridge of its own. Proxies on different bridges cannot reach each other
 * (Docker's isolation rules), and nothing is published, so a proxy is reachable only from the
 * host and from api-backend. Whether it may open connections beyond that is PROXY_EGRESS:
 * `internet` by default, because a proxy forwards to its user's zrok share on the
 * public internet; `none` makes the network internal (no route out) for deployments without zrok.
 * Either way the proxy reaches api-backend on its own network (host mode: the gateway address).
 */
import type Docker from 'dockerode';
import { PROTOCOL_VERSION } from '@ctll/protocol';
import { LABELS, containerName, networkName } from '../naming';
import { addressIn } from '../subnet-pool';

/** The port the proxy listens on inside its container (its PORT). */
export const PROXY_PORT = 8080;

export type ProxyRole = 'proxy' | 'network';

/** Whether a proxy may open connections beyond its own network (zrok shares need the internet). */
export type ProxyEgress = 'internet' | 'none';

export interface ProxySpecOptions {
  /** Which api-backend deployment owns these resources (PROXY_SCOPE); see SCOPE_LABEL. */
  scope: string;
  image: string;
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  tmpfsMb: number;
  stopGraceSeconds: number;
  logMaxSize: string;
  logMaxFiles: number;
  egress: ProxyEgress;
}

const MIB = 1024 * 1024;

/**
 * Sets apart the resources of api-backends that share one engine (production and a test run, two
 * stacks on one VPS): each follows, sweeps, adopts and shuts down only its own scope.
 */
export const SCOPE_LABEL = LABELS.scope;

export function proxyLabels(ownerHash: string, role: ProxyRole, subnet: string, spec: Pick<ProxySpecOptions, 'image' | 'scope'>, now = new Date()): Record<string, string> {
  return {
    [LABELS.managed]: 'true',
    [SCOPE_LABEL]: spec.scope,
    [LABELS.owner]: ownerHash,
    [LABELS.role]: role,
    [LABELS.created]: now.toISOString(),
    [LABELS.image]: spec.image,
    [LABELS.subnet]: subnet,
    ...(role === 'proxy' ? { [LABELS.protocol]: String(PROTOCOL_VERSION) } : {}),
  };
}

/** The label filter (all must match) that finds everything this scope made: for list, events and the sweep. */
export function managedFilter(scope: string, role?: ProxyRole): string[] {
  return [`${LABELS.managed}=true`, `${SCOPE_LABEL}=${scope}`, ...(role ? [`${LABELS.role}=${role}`] : [])];
}

/** The proxy's environment as the engine takes it (NAME=value), for a container or a service task. */
export function proxyEnvList(env: Record<string, string>, memoryMb: number): string[] {
  return Object.entries({
    ...env,
    PORT: String(PROXY_PORT),
    // Collect garbage before the cgroup's OOM killer strikes: V8's heap at 3/4 of the cap
    // leaves the rest for buffers, sockets and the runtime itself.
    NODE_OPTIONS: `--max-old-space-size=${Math.max(16, Math.floor(memoryMb * 0.75))}`,
  }).map(([name, value]) => `${name}=${value}`);
}

/** True when a resource's labels say this scope made it. */
export function isOurs(labels: Record<string, string> | undefined, scope: string): boolean {
  return labels?.[LABELS.managed] === 'true' && labels[SCOPE_LABEL] === scope;
}

export function networkSpec(ownerHash: string, subnet: string, options: ProxySpecOptions): Docker.NetworkCreateOptions {
  return {
    Name: networkName(ownerHash),
    Driver: 'bridge',
    // A second create with the same name gets 409 instead of a twin network.
    CheckDuplicate: true,
    // Internal: no route out of the network. The host, and so api-backend, still reaches the
    // proxy, and the proxy still reaches api-backend at the gateway address.
    Internal: options.egress === 'none',
    Attachable: false,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Config: [{ Subnet: subnet, Gateway: addressIn(subnet, 1) }] },
    Labels: proxyLabels(ownerHash, 'network', subnet, options),
  };
}

export function containerSpec(
  ownerHash: string,
  subnet: string,
  env: Record<string, string>,
  options: ProxySpecOptions,
): Docker.ContainerCreateOptions {
  const network = networkName(ownerHash);
  const memory = options.memoryMb * MIB;
  return {
    name: containerName(ownerHash),
    Image: options.image,
    User: '1001:1001',
    Env: proxyEnvList(env, options.memoryMb),
    Labels: proxyLabels(ownerHash, 'proxy', subnet, options),
    StopTimeout: options.stopGraceSeconds,
    // The image's HEALTHCHECK runs a node process every 10 s inside each proxy's memory and pids
    // budget; with thousands of proxies that is real load. The driver checks GET /health itself.
    Healthcheck: { Test: ['NONE'] },
    HostConfig: {
      NetworkMode: network,
      Memory: memory,
      MemorySwap: memory,
      NanoCpus: Math.round(options.cpus * 1e9),
      PidsLimit: options.pidsLimit,
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': `rw,noexec,nosuid,nodev,size=${options.tmpfsMb}m` },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      PortBindings: {},
      PublishAllPorts: false,
      IpcMode: 'private',
      // Under host memory pressure, a proxy goes before api-backend or the database.
      OomScoreAdj: 500,
      LogConfig: { Type: 'json-file', Config: { 'max-size': options.logMaxSize, 'max-file': String(options.logMaxFiles) } },
    },
    NetworkingConfig: { EndpointsConfig: { [network]: {} } },
  };
}
