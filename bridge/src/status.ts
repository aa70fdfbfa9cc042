/**
 * What the bridge tells the person running it: one status line, printed when something changes.
 *
 * The bridge reports every change as a BridgeStatus; the printer decides what is worth a line.
 * On a terminal the line is rewritten in place, so even the request counter can follow along.
 * Anywhere else (a log file, systemd) each line stays, so a failure that repeats on every retry
 * (an expired token, a relay that is down) is printed once until something else happens.
 * `--json` prints the same decisions as JSON lines, one object each. The CLI gives it stderr: stdout
 * is for the data a command was asked for.
 */
import type { TargetState } from './target-probe';
import type { TransportName } from './transport';

export type BridgeState = 'connecting' | 'connected' | 'retrying' | 'closed';

export interface BridgeStatus {
  state: BridgeState;
  /** The relay as the person gave it. */
  server: string;
  /** The token's `sub`, when the token is a readable JWT. */
  user: string | undefined;
  target: string;
  /** The transport in use: after a fallback, `poll` although `ws` was asked for. */
  transport: TransportName;
  /** Requests answered to their end since the bridge started. */
  served: number;
  /** Local requests running now. */
  active: number;
  /** Why the last connection ended or failed (retrying, closed). */
  reason?: string;
  /** When retrying: how long until the next attempt. */
  retryInMs?: number;
  /** The local LLM server as the last probe found it; absent until the first probe ends. */
  targetHealth?: TargetHealthStatus;
  /** The named targets (`--target name=url`), in the order given; absent when there are none. */
  targets?: NamedTargetStatus[];
}

/** A probe's answer, with how the status line names the server ("Ollama"). */
export type TargetHealthStatus = TargetState & { name: string };

export interface NamedTargetStatus {
  /** The target's name, as in the `/t/<name>/` prefix. */
  name: string;
  target: string;
  /** Absent until its first probe ends. */
  health?: TargetHealthStatus;
}

/** How the status line names each transport. */
export const TRANSPORT_LABELS: Readonly<Record<TransportName, string>> = Object.freeze({ ws: 'WebSocket', poll: 'long-poll' });

export function formatStatus(status: BridgeStatus): string {
  const served = `${status.served} request${status.served === 1 ? '' : 's'} served`;
  switch (status.state) {
    case 'connecting':
      return `connecting to ${status.server} via ${TRANSPORT_LABELS[status.transport]} · ${formatTargets(status)}`;
    case 'connected':
      return `connected to ${status.server}${status.user ? ` as ${status.user}` : ''} via ${TRANSPORT_LABELS[status.transport]} · ${formatTargets(status)} · ${served}`;
    case 'retrying':
      return `disconnected (${status.reason ?? 'unknown reason'}); retrying in ${formatDelay(status.retryInMs ?? 0)}`;
    case 'closed':
      return `stopped · ${served}`;
  }
}

/** The default target, then each named one: "target http://127.0.0.1:11434 (Ollama 0.5.1) · lms: http://127.0.0.1:1234 (…)". */
function formatTargets(status: BridgeStatus): string {
  const named = (status.targets ?? []).map((one) => `${one.name}: ${formatTarget(one.target, one.health, '')}`);
  return [formatTarget(status.target, status.targetHealth, 'target '), ...named].join(' · ');
}

/** "target http://127.0.0.1:11434 (Ollama 0.5.1)", or "Ollama not reachable at http://127.0.0.1:11434 (connection refused)". */
function formatTarget(target: string, health: TargetHealthStatus | undefined, lead: string): string {
  if (!health) return `${lead}${target}`;
  if (!health.up) return `${health.name} not reachable at ${target} (${health.error ?? 'no answer'})`;
  return `${lead}${target} (${health.name}${health.version ? ` ${health.version}` : ''})`;
}

/** 800 ms is "0.8 s", 4 123 ms is "4.1 s", 30 000 ms is "30 s". */
export function formatDelay(ms: number): string {
  const seconds = Math.round(ms / 100) / 10;
  return `${seconds} s`;
}

export type StatusMode = 'text' | 'json' | 'quiet';

/** Where lines go: process.stderr in the CLI, a collector in tests. */
export interface StatusOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

const PREFIX = 'ctll-bridge: ';

export class StatusPrinter {
  private lastLine: string | undefined;
  /** The state and reason of the last line printed, to recognise a failure repeating itself. */
  private lastKey: string | undefined;
  private lineOpen = false;

  constructor(
    private readonly mode: StatusMode,
    private readonly out: StatusOutput,
    private readonly now: () => Date = () => new Date(),
  ) {}

  status(status: BridgeStatus): void {
    if (this.mode === 'quiet') return;
    const line = formatStatus(status);
    if (this.mode === 'text' && this.out.isTTY) {
      if (line === this.lastLine) return;
      this.lastLine = line;
      // \r plus "erase line" redraws in place; the line stays open until something else is printed.
      this.out.write(`\r\x1b[2K${PREFIX}${line}`);
      this.lineOpen = true;
      return;
    }
    const key = statusKey(status);
    if (key === this.lastKey) return;
    // While retrying, each attempt's "connecting" is noise: only the outcome of the attempt matters.
    if (status.state === 'connecting' && this.lastKey?.startsWith('retrying')) return;
    this.lastKey = key;
    if (this.mode === 'json') this.out.write(`${JSON.stringify({ time: this.now().toISOString(), ...status, message: line })}\n`);
    else this.out.write(`${PREFIX}${line}\n`);
  }

  /** A line that is not a status (a relay notice); printed in every mode but quiet. */
  notice(message: string): void {
    if (this.mode === 'quiet') return;
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify({ time: this.now().toISOString(), state: 'notice', message })}\n`);
      return;
    }
    this.endLine();
    this.out.write(`${PREFIX}${message}\n`);
    this.lastLine = undefined;
  }

  /** A failure that ends the bridge: printed in every mode, quiet too (as text there), so a supervisor's log says why. */
  error(message: string): void {
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify({ time: this.now().toISOString(), state: 'error', message })}\n`);
      return;
    }
    this.endLine();
    this.out.write(`${PREFIX}${message}\n`);
    this.lastLine = undefined;
  }

  /** Ends a line being rewritten in place, so the shell prompt starts on a new one. */
  endLine(): void {
    if (!this.lineOpen) return;
    this.out.write('\n');
    this.lineOpen = false;
  }
}

/** What makes two statuses the same for a log: the state and reason (or transport and the targets' health), not counters or delays. */
function statusKey(status: BridgeStatus): string {
  if (status.state === 'retrying') return `retrying:${status.reason ?? ''}`;
  const healthKey = (health: TargetHealthStatus | undefined) => (health ? `:${health.up ? 'up' : `down ${health.error ?? ''}`}` : '');
  const named = (status.targets ?? []).map((one) => `:${one.name}${healthKey(one.health)}`).join('');
  return `${status.state}:${status.transport}${healthKey(status.targetHealth)}${named}`;
}
