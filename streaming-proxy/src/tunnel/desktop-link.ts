/**
 * One connected desktop, whatever the transport. A link carries control messages and data frames
 * both ways and owns the correlator of the streams running over it. The hub picks a link for
 * each new exchange; the exchange then talks only to that link.
 */
import type { ControlMessage } from '@ctll/protocol';
import type { Correlator, StreamSender } from './correlator';
import type { LinkCounters } from './link-counters';

export type Transport = 'ws' | 'poll';

export interface LinkInfo {
  id: string;
  transport: Transport;
  connectedAt: string;
  client: string;
  activeStreams: number;
  /** The session's counts so far, so a stop that ends the link still reaches the audit with them. */
  requests: number;
  bytesToDesktop: number;
  bytesFromDesktop: number;
}

export interface DesktopLink extends StreamSender {
  readonly id: string;
  readonly transport: Transport;
  readonly connectedAt: number;
  /** The bridge's own description (user agent), for status and audit. */
  readonly client: string;
  readonly correlator: Correlator;
  readonly counters: LinkCounters;
  readonly closed: boolean;
  /** True while the link cannot take another request (a polling desktop's queue is full). */
  readonly queueFull: boolean;
  sendControl(message: ControlMessage): void;
  sendData(id: string, payload: Buffer): void;
  close(code: number, reason: string): void;
  info(): LinkInfo;
}
