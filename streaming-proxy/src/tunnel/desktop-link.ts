/**
 * One connected desktop, whatever the transport. A link carries control messages and data frames
 * both ways and owns the correlator of the streams running over it. The hub picks a link for
 * each new exchange; the exchange then talks only to that link.
 */
import type { ControlMessage, DesktopInfo, GrowingWindows, TunnelRtt, WholeHead } from '@ctll/protocol';
import type { Correlator, StreamSender } from './correlator';
import type { LinkCounters } from './link-counters';
import type { RoundTrip } from './round-trip';

export type Transport = 'ws' | 'poll';

/** What /status reports of a link (protocol's DesktopInfo), with the counts always present. */
export interface LinkInfo extends DesktopInfo {
  transport: Transport;
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
  /** WebSocket links: their ping round trip. Long-poll links have none to time. */
  readonly roundTrip?: RoundTrip;
  readonly closed: boolean;
  /** True while the link cannot take another request (a polling desktop's queue is full). */
  readonly queueFull: boolean;
  sendControl(message: ControlMessage): void;
  sendData(id: string, payload: Buffer): void;
  /** Whether the bridge said it takes whole frames (tunnel-whole.ts); it may send them only then. */
  readonly acceptsWhole: boolean;
  /**
   * A short request as one whole frame; false (nothing sent) when the bridge takes none or the head
   * is too big for one: the caller then sends head, body and end.
   */
  sendWhole(head: WholeHead, body: Buffer): boolean;
  /** Where both ends agreed that streams' windows grow (a WebSocket link, stream-window.ts); else fixed windows. */
  readonly windows?: GrowingWindows;
  close(code: number, reason: string): void;
}

/** What /status reports of a link; the same for every transport. */
export function linkInfo(link: DesktopLink): LinkInfo {
  return {
    id: link.id,
    transport: link.transport,
    connectedAt: new Date(link.connectedAt).toISOString(),
    client: link.client,
    activeStreams: link.correlator.size,
    ...link.counters,
    ...(link.correlator.target ? { target: link.correlator.target } : {}),
    ...rttOf(link),
  };
}

function rttOf(link: DesktopLink): { rtt?: TunnelRtt } {
  const rtt = link.roundTrip?.snapshot();
  return rtt ? { rtt } : {};
}
