/**
 * Every local target's probe, as the bridge shows and reports them.
 *
 * One TargetProbe per target, the default's first. What they last said goes two ways: into the
 * status people read (the default's health, then each named target's), and to the relay as one
 * `target` message (protocol's target.ts) on whatever connection requests use now. A named target
 * the probe has not answered for yet is left out of the message rather than reported as down.
 */
import type { NamedTargetReport, TargetReportMessage } from '@ctll/protocol';
import type { LocalTarget, LocalTargets } from './local-targets';
import type { BridgeStatus, NamedTargetStatus } from './status';
import { TargetProbe, targetName, type TargetState } from './target-probe';

export interface TargetWatchOptions {
  intervalMs: number;
  timeoutMs: number;
  /** Called whenever any target's state changes. */
  onChange(): void;
}

interface Watched {
  target: LocalTarget;
  probe: TargetProbe;
}

export class TargetWatch {
  private readonly watched: Watched[];

  constructor(
    targets: LocalTargets,
    private readonly options: TargetWatchOptions,
  ) {
    this.watched = targets.all.map((target) => ({
      target,
      probe: new TargetProbe(target, { intervalMs: options.intervalMs, timeoutMs: options.timeoutMs, onChange: () => options.onChange() }),
    }));
  }

  /** Starts probing, unless probes are switched off (`intervalMs` 0). */
  start(): void {
    if (this.options.intervalMs <= 0) return;
    for (const { probe } of this.watched) probe.start();
  }

  stop(): void {
    for (const { probe } of this.watched) probe.stop();
  }

  /** The default target's health for the status line; undefined until its first probe answered. */
  get defaultHealth(): BridgeStatus['targetHealth'] {
    return health(this.watched[0]!);
  }

  /** Each named target as the status lists it; empty when there are none. */
  get named(): NamedTargetStatus[] {
    return this.watched.slice(1).map((one) => {
      const state = health(one);
      return { name: one.target.name ?? '', target: one.target.label, ...(state ? { health: state } : {}) };
    });
  }

  /** What the relay is told; undefined until the default target's first probe answered. */
  report(): TargetReportMessage | undefined {
    const [first, ...named] = this.watched;
    const state = first?.probe.state;
    if (!state) return undefined;
    const message: TargetReportMessage = { type: 'target', ...probeReport(state) };
    const targets = named.flatMap(({ target, probe }): NamedTargetReport[] =>
      probe.state && target.name ? [{ name: target.name, ...probeReport(probe.state) }] : [],
    );
    if (targets.length > 0) message.targets = targets;
    return message;
  }
}

function health({ target, probe }: Watched): BridgeStatus['targetHealth'] {
  const state = probe.state;
  return state && { ...state, name: targetName(state.kind, target.url) };
}

/** A probe's answer as the protocol carries it (an error cut to what the message allows). */
function probeReport(state: TargetState): Omit<NamedTargetReport, 'name'> {
  return {
    up: state.up,
    kind: state.kind,
    ...(state.version ? { version: state.version } : {}),
    ...(state.error ? { error: state.error.slice(0, 512) } : {}),
  };
}
