/**
 * Follows the Docker engine's event stream for our proxy containers (label filter, actions kill,
 * die, oom and destroy) and hands each event to the driver. Events are cues, never the truth: a stream
 * can end with the daemon, or stay open and fall silent, so the driver re-reads the engine
 * whenever the stream (re)connects and on its own periodic sweep.
 *
 * The stream is reopened whenever it ends or fails, after a backoff that doubles from
 * `initialBackoffMs` to `maxBackoffMs` (with jitter) and starts over once a stream has stayed up
 * for `stableAfterMs`. A reopened stream asks for events since the last one seen, so a short gap
 * loses nothing (the driver ignores repeats).
 */
import type Docker from 'dockerode';
import type { Logger } from '../../logger';
import { dockerMessage } from './errors';
import { LABELS } from '../naming';
import { managedFilter } from './spec';

export type ContainerAction = 'kill' | 'die' | 'oom' | 'destroy';
const ACTIONS: readonly string[] = ['kill', 'die', 'oom', 'destroy'] satisfies ContainerAction[];

export interface ContainerEvent {
  action: ContainerAction;
  containerId: string;
  ownerHash?: string;
  exitCode?: number;
  /** For `kill`: the signal sent, as the engine gives it (a number, e.g. "15"). */
  signal?: string;
  /** Unix seconds. */
  time: number;
}

export interface EventFollowerOptions {
  scope: string;
  onEvent: (event: ContainerEvent) => void;
  /** Called on every successful (re)connect; `gap` is true when events may have been missed. */
  onConnect: (gap: boolean) => void;
  logger: Logger;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  stableAfterMs?: number;
}

const DEFAULTS = { initialBackoffMs: 250, maxBackoffMs: 30_000, stableAfterMs: 10_000 } as const;

export class DockerEventFollower {
  private readonly options: Required<EventFollowerOptions>;
  private abort?: AbortController;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private failures = 0;
  private lastEventTime?: number;
  private everConnected = false;
  private _connected = false;

  constructor(
    private readonly docker: Docker,
    options: EventFollowerOptions,
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  get connected(): boolean {
    return this._connected;
  }

  start(): void {
    void this.connect();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.abort?.abort();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const abort = new AbortController();
    this.abort = abort;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getEvents({
        filters: { type: ['container'], label: managedFilter(this.options.scope, 'proxy'), event: [...ACTIONS] },
        ...(this.lastEventTime !== undefined ? { since: this.lastEventTime } : {}),
        abortSignal: abort.signal,
      });
    } catch (error) {
      this.retry(`could not open: ${dockerMessage(error)}`);
      return;
    }
    if (this.closed) {
      abort.abort();
      return;
    }
    const openedAt = Date.now();
    const gap = this.everConnected || this.failures > 0;
    this.everConnected = true;
    this._connected = true;
    if (this.failures > 0) this.options.logger.info('StreamingProxy Docker event stream reconnected', { failures: this.failures });
    this.options.onConnect(gap);

    let buffered = '';
    stream.on('data', (chunk: Buffer | string) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) this.handleLine(line);
      }
    });
    let ended = false;
    const onEnd = (reason: string) => {
      if (ended) return;
      ended = true;
      this._connected = false;
      if (Date.now() - openedAt >= this.options.stableAfterMs) this.failures = 0;
      this.retry(reason);
    };
    stream.on('end', () => onEnd('ended'));
    stream.on('close', () => onEnd('closed'));
    stream.on('error', (error: Error) => onEnd(`failed: ${error.message}`));
  }

  private handleLine(line: string): void {
    let raw: RawEvent;
    try {
      raw = JSON.parse(line) as RawEvent;
    } catch {
      this.options.logger.warn('StreamingProxy ignored an unparsable Docker event', { line: line.slice(0, 200) });
      return;
    }
    if (typeof raw.time === 'number') this.lastEventTime = raw.time;
    const action = raw.Action ?? raw.status;
    const containerId = raw.Actor?.ID ?? raw.id;
    if (!action || !ACTIONS.includes(action) || !containerId) return;
    const attributes = raw.Actor?.Attributes ?? {};
    const exitCode = attributes.exitCode !== undefined ? Number(attributes.exitCode) : undefined;
    this.options.onEvent({ action: action as ContainerAction, containerId, ownerHash: attributes[LABELS.owner], exitCode, signal: attributes.signal, time: raw.time ?? Date.now() / 1000 });
  }

  private retry(reason: string): void {
    this._connected = false;
    if (this.closed) return;
    const delay = Math.min(this.options.maxBackoffMs, this.options.initialBackoffMs * 2 ** this.failures);
    if (this.failures === 0) this.options.logger.warn('StreamingProxy Docker event stream lost; reconnecting', { reason });
    this.failures += 1;
    // Jitter: replicas that lost the same daemon do not all come back in the same instant.
    this.timer = setTimeout(() => void this.connect(), delay * (0.5 + Math.random() / 2));
  }
}

interface RawEvent {
  status?: string;
  id?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
}
