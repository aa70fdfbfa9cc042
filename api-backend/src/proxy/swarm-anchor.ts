/**
 * The node anchor: what lets an api-backend that runs as a swarm task (a stack replica) reach a
 * proxy on another node. The engine lets a task join an attachable overlay only on a node where
 * something already uses it, and a proxy's own task uses it only on the proxy's node. A plain
 * container may join anywhere, so each node where replicas run keeps one: `ctll-anchor-<scope>`,
 * doing nothing, hardened as a proxy is, whose only network of its own is a local internal bridge
 * `ctll-anchors-<scope>` (no way out). It is connected to a user's overlay before a replica joins
 * it, and it leaves after the replicas on its node have left. Measured on a two-node swarm
 * (Docker 20.10): with the anchor leaving while a replica was still the overlay's last user on its
 * node, the node kept the overlay for good in 7 of 9 tries, its name then refused to the user's
 * next start. Replicas on one node share the anchor; whichever makes it first wins the name.
 *
 * The anchor and its network carry `io.cloudtolocalllm.anchor-of=<scope>` and none of the labels
 * that mark a scope's proxies and networks, so nothing that follows, lists or counts those sees
 * them. They outlive api-backend, as the proxies do; after the stack is gone, on each node,
 * `docker rm -f ctll-anchor-<scope> && docker network rm ctll-anchors-<scope>` removes them.
 */
import type Docker from 'dockerode';
import type { Logger } from '../logger';
import { classify, dockerMessage, ignoringGone, toRelayError } from './docker/errors';

export const anchorName = (scope: string): string => `ctll-anchor-${scope}`;
export const anchorNetworkName = (scope: string): string => `ctll-anchors-${scope}`;
/** Names the scope whose replicas an anchor (and its network) serves. */
export const ANCHOR_LABEL = 'io.cloudtolocalllm.anchor-of';

/** Does nothing for ever, in as little memory as node allows. */
const IDLE = 'setInterval(() => {}, 1 << 30)';

export interface AnchorOptions {
  scope: string;
  /** The proxy image (by id or name): the node has it, and it runs node as uid 1001. */
  image: () => Promise<string>;
  logger: Logger;
}

export class NodeAnchor {
  private made?: Promise<string>;

  constructor(
    private readonly docker: Docker,
    private readonly options: AnchorOptions,
  ) {}

  /** Connects the anchor to the overlay unless it is on it already. */
  async join(network: Docker.NetworkInspectInfo): Promise<void> {
    const id = await this.id();
    if (network.Containers?.[id]) return;
    try {
      await this.docker.getNetwork(network.Id).connect({ Container: id });
    } catch (error) {
      if (classify(error) === 'conflict') return; // connected by another replica on this node meanwhile
      if (classify(error) === 'not-found') this.made = undefined; // the anchor went: made again next time
      throw toRelayError(error, { action: `connect the node anchor to ${network.Name}`, image: anchorName(this.options.scope) });
    }
  }

  /** Takes the anchor off the overlay: last of this node's containers, after every replica here left. */
  async leave(networkId: string): Promise<void> {
    const id = await this.existing();
    if (!id) return;
    await ignoringGone(() => this.docker.getNetwork(networkId).disconnect({ Container: id, Force: true }));
  }

  /** Whether an endpoint on an overlay (its name as the network lists it) is this node's anchor. */
  isAnchor(endpointName: string): boolean {
    return endpointName === anchorName(this.options.scope);
  }

  /** The anchor's container id, made and started if it is not there. */
  private id(): Promise<string> {
    this.made ??= this.ensure().catch((error: unknown) => {
      this.made = undefined;
      throw error;
    });
    return this.made;
  }

  private async existing(): Promise<string | undefined> {
    const info = await ignoringGone(() => this.docker.getContainer(anchorName(this.options.scope)).inspect());
    return info?.Id;
  }

  private async ensure(): Promise<string> {
    const name = anchorName(this.options.scope);
    const labels = { [ANCHOR_LABEL]: this.options.scope };
    const local = anchorNetworkName(this.options.scope);
    await this.docker
      .createNetwork({ Name: local, Driver: 'bridge', Internal: true, CheckDuplicate: true, Labels: labels })
      .catch((error: unknown) => {
        if (classify(error) !== 'conflict') throw toRelayError(error, { action: `create network ${local}`, image: name });
      });
    let info = await ignoringGone(() => this.docker.getContainer(name).inspect());
    if (!info) {
      try {
        await this.docker.createContainer({
          name,
          Image: await this.options.image(),
          Entrypoint: ['node', '-e', IDLE],
          Cmd: [],
          User: '1001:1001',
          Labels: labels,
          Healthcheck: { Test: ['NONE'] },
          HostConfig: {
            NetworkMode: local,
            Memory: 32 * 1024 * 1024,
            MemorySwap: 32 * 1024 * 1024,
            NanoCpus: 50_000_000,
            PidsLimit: 16,
            ReadonlyRootfs: true,
            CapDrop: ['ALL'],
            SecurityOpt: ['no-new-privileges:true'],
            // Restarted with the node's engine: a node coming back keeps serving across nodes.
            RestartPolicy: { Name: 'unless-stopped' },
            IpcMode: 'private',
            LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
          },
          NetworkingConfig: { EndpointsConfig: { [local]: {} } },
        });
        this.options.logger.info('StreamingProxy node anchor made (lets replicas on this node reach proxies on other nodes)', { anchor: name });
      } catch (error) {
        if (classify(error) !== 'conflict') throw toRelayError(error, { action: `create ${name}`, image: name });
      }
      info = await this.docker.getContainer(name).inspect();
    }
    if (!info.State.Running) {
      await this.docker
        .getContainer(info.Id)
        .start()
        .catch((error: unknown) => {
          if (classify(error) !== 'not-modified') throw new Error(`the node anchor ${name} would not start: ${dockerMessage(error)}`);
        });
    }
    return info.Id;
  }
}
