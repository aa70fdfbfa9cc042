/**
 * The local LLM servers a bridge forwards to: its default target and any named ones
 * (`--target name=url`, e.g. Ollama and LM Studio on one PC), and which of them a relayed
 * request is for.
 *
 * A request chooses a named target with the path prefix `/t/<name>/`, which is removed before the
 * request goes out; every other path goes to the default target. The relay carries the path as the
 * web client sent it: only the bridge knows its targets, so only the bridge reads the prefix, once
 * per request (`route`).
 */
import http from 'node:http';
import https from 'node:https';
import { namedTargetOf } from '@ctll/protocol';

/** One local LLM server: its base URL and one keep-alive pool shared by every stream to it. */
export interface LocalTarget {
  /** undefined for the default target. */
  readonly name: string | undefined;
  readonly url: URL;
  /** The target as a person wrote it, for messages. */
  readonly label: string;
  readonly agent: http.Agent;
}

export function createLocalTarget(url: URL, name?: string): LocalTarget {
  // Keep-alive saves a TCP handshake per request; the pool is unbounded because the relay
  // already limits how many streams one tunnel may run at once (256 by default). As many idle
  // connections are kept as there were streams at once: with fewer, a burst of parallel requests
  // closed a connection after most answers and opened a new one for the next request.
  const agentOptions = { keepAlive: true, keepAliveMsecs: 1_000, maxSockets: Infinity, maxFreeSockets: 256 };
  const agent = url.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  return { name, url, label: url.origin + url.pathname.replace(/\/$/, ''), agent };
}

/** A request's target and the path to ask it for; or the name of a target this bridge does not have. */
export type Route = { target: LocalTarget; path: string } | { target: undefined; unknownName: string };

export class LocalTargets {
  readonly default: LocalTarget;
  private readonly named: ReadonlyMap<string, LocalTarget>;

  constructor(defaultUrl: URL, named: ReadonlyMap<string, URL> = new Map()) {
    this.default = createLocalTarget(defaultUrl);
    this.named = new Map([...named].map(([name, url]) => [name, createLocalTarget(url, name)]));
  }

  /** The default target first, then the named ones in the order they were given. */
  get all(): LocalTarget[] {
    return [this.default, ...this.named.values()];
  }

  get names(): string[] {
    return [...this.named.keys()];
  }

  /** `/t/lms/v1/models` is `/v1/models` on the target named lms; `/api/tags` is the default target's. */
  route(path: string): Route {
    const named = namedTargetOf(path);
    if (!named) return { target: this.default, path };
    const target = this.named.get(named.name);
    if (!target) return { target: undefined, unknownName: named.name };
    return { target, path: named.rest };
  }

  /** Closes every pooled connection. */
  destroy(): void {
    for (const target of this.all) target.agent.destroy();
  }
}
