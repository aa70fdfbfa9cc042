/**
 * What a user's proxy looks like to a swarm manager, as plain create bodies (no engine calls):
 * an attachable overlay network `ctll-net-<h>` with an explicit subnet from the pool (the
 * manager allocating in its lower half only: swarm-addresses.ts), and a
 * service `ctll-proxy-<h>` with one replica on it. Same labels, limits and hardening as the docker
 * driver's container (docker/spec.ts), as far as a service spec can say them:
 *
 * - read-only root, a small tmpfs /tmp, no capabilities, uid 1001, hard memory, CPU and pids limits,
 *   no healthcheck (the driver probes /health), capped json-file logs, no published ports;
 * - restart condition `none`: a proxy that dies stays dead until the driver notices, reports it
 *   and removes it, exactly like the docker driver; never a crash loop on one node;
 * - the image is the node's local image, by id: never resolved to a registry digest (what
 *   `docker service create --no-resolve-image` avoids) and never pulled (the engine skips the pull
 *   only for an id); its name stays in the labels;
 * - `no-new-privileges` has no field in the service API this engine speaks (1.41); with every
 *   capability dropped and a non-root user, a setuid binary in the image gains nothing anyway.
 *   Swarm also gives no MemorySwap field: the engine sets swap to the memory limit again.
 *
 * Container labels repeat the service's, so the engine's container events for a task carry the
 * owner (docker/events.ts follows them unchanged).
 */
import type Docker from 'dockerode';
import { proxyEnvList, proxyLabels, type ProxySpecOptions } from './docker/spec';
import { containerName, networkName } from './naming';
import { managerRange } from './swarm-addresses';

const MIB = 1024 * 1024;

export function overlaySpec(ownerHash: string, subnet: string, options: ProxySpecOptions): Docker.NetworkCreateOptions {
  return {
    Name: networkName(ownerHash),
    Driver: 'overlay',
    CheckDuplicate: true,
    // Attachable: a containerised api-backend joins each user's overlay (docker/networks.ts attach).
    Attachable: true,
    // Internal: no route out of the overlay, and no docker_gwbridge leg either (see swarm-driver.ts).
    Internal: options.egress === 'none',
    EnableIPv6: false,
    // The gateway of an overlay lives in the overlay's own namespace, never on the host. The
    // manager allocates in the lower half only; replicas running as tasks join in the upper half.
    IPAM: { Driver: 'default', Config: [{ Subnet: subnet, IPRange: managerRange(subnet) }] },
    Labels: proxyLabels(ownerHash, 'network', subnet, options),
  };
}

export interface ServiceSpecOptions extends ProxySpecOptions {
  /** Placement constraints, e.g. `node.labels.ctll-proxies==true` (PROXY_PLACEMENT). */
  constraints: string[];
}

/** Where the service goes: its overlay, and the local image's id (`options.image` names it in the labels). */
export interface ServicePlace {
  subnet: string;
  networkId: string;
  imageId: string;
}

/** The service body; dockerode's types lag the API, so the body is typed loosely where they do. */
export function serviceSpec(ownerHash: string, place: ServicePlace, env: Record<string, string>, options: ServiceSpecOptions): Record<string, unknown> {
  const { subnet, networkId } = place;
  const labels = proxyLabels(ownerHash, 'proxy', subnet, options);
  const memory = options.memoryMb * MIB;
  return {
    Name: containerName(ownerHash),
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: place.imageId,
        Labels: labels,
        User: '1001:1001',
        Env: proxyEnvList(env, options.memoryMb),
        ReadOnly: true,
        CapabilityDrop: ['ALL'],
        Mounts: [{ Type: 'tmpfs', Target: '/tmp', TmpfsOptions: { SizeBytes: options.tmpfsMb * MIB, Mode: 0o1777 } }],
        StopGracePeriod: options.stopGraceSeconds * 1e9,
        Healthcheck: { Test: ['NONE'] },
      },
      Resources: { Limits: { MemoryBytes: memory, NanoCPUs: Math.round(options.cpus * 1e9), Pids: options.pidsLimit } },
      RestartPolicy: { Condition: 'none', MaxAttempts: 0 },
      Placement: { Constraints: options.constraints },
      Networks: [{ Target: networkId }],
      LogDriver: { Name: 'json-file', Options: { 'max-size': options.logMaxSize, 'max-file': String(options.logMaxFiles) } },
    },
    Mode: { Replicated: { Replicas: 1 } },
    // No virtual IP: api-backend talks to the one task's own address, and a /28 has few to spare.
    EndpointSpec: { Mode: 'dnsrr', Ports: [] },
  };
}
