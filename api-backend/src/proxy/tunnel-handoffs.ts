/**
 * api-backend's side of handing desktops' tunnels to a child proxy (process driver): the
 * desktop's socket goes to the child over its IPC channel with the upgrade request's headers, and
 * from then on its bytes go between the desktop and the proxy without passing through us
 * (protocol/src/tunnel-handoff.ts has the contract and why). What stays here is a ticket per
 * tunnel, so the upgrade is still counted and audited, and a drain can close it.
 */
import { EventEmitter } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { BadGatewayError, handOffReportSchema, ServiceUnavailableError, type HandOffReport, type HandOffRequest, type RelayError } from '@ctll/protocol';

/** A desktop's tunnel as api-backend holds it: the spliced socket, or the ticket of a handed one. */
export interface TunnelEnd {
  once(event: 'close', listener: () => void): unknown;
  /** Cuts the tunnel; the bridge reconnects. */
  destroy(): unknown;
}

/** How a handed upgrade went. */
export interface HandOffOutcome {
  accepted(tunnel: TunnelEnd): void;
  /** The proxy refused it and told the desktop so itself. */
  refused(status: number, code: string): void;
  /** It never reached an answer (the proxy exited, stalled, or the desktop left): nobody was told. */
  failed(error: RelayError): void;
}

/** Longer than the proxy needs for a handshake under load; as long as a relayed upgrade may take. */
const ANSWER_TIMEOUT_MS = 10_000;

class HandedTunnel extends EventEmitter implements TunnelEnd {
  constructor(private readonly cut: () => void) {
    super();
  }

  destroy(): void {
    this.cut();
  }
}

interface Ticket {
  outcome: HandOffOutcome;
  timer?: NodeJS.Timeout;
  tunnel?: HandedTunnel;
}

/** Whether `socket` is one a child can be handed: a plain TCP socket (TLS state would stay behind). */
export function canHandOff(socket: Duplex): socket is Socket {
  return socket instanceof Socket && !(socket instanceof TLSSocket) && !socket.destroyed;
}

export class TunnelHandOffs {
  private readonly tickets = new Map<number, Ticket>();
  private nextTicket = 1;

  constructor(private readonly child: ChildProcess) {
    child.on('message', (message: unknown) => {
      const report = handOffReportSchema.safeParse(message);
      if (report.success) this.heard(report.data);
    });
    child.once('exit', () => this.childGone());
  }

  /** Sends the desktop's socket to the child; `outcome` hears how it went. */
  handOff(socket: Socket, headers: Record<string, string | string[]>, head: Buffer, outcome: HandOffOutcome): void {
    const ticket = this.nextTicket++;
    // Bytes that came after the request's head and were read here already go along with it. (A
    // conforming client sends nothing before our 101, which only the proxy writes.)
    const early = socket.read() as Buffer | null;
    const entry: Ticket = { outcome };
    this.tickets.set(ticket, entry);
    entry.timer = setTimeout(() => {
      this.settle(ticket)?.failed(new BadGatewayError('the streaming proxy did not answer a handed tunnel in time'));
      this.request({ type: 'tunnel-close', ticket });
    }, ANSWER_TIMEOUT_MS);
    const message: HandOffRequest = { type: 'tunnel', ticket, headers, head: (early ? Buffer.concat([head, early]) : head).toString('base64') };
    // Not tracked as a connection of our server any more once it is the child's (Node would
    // otherwise count it for the server across processes): the child owns it from here.
    (socket as Socket & { server: unknown }).server = null;
    this.child.send(message, socket, (error) => {
      // The channel is gone, and with it the child: the desktop hears so, if its socket is still here.
      if (error) return this.settle(ticket)?.failed(unreachable(error.message));
      // Ours no longer: the handle went to the child; what is left here is an empty shell.
      socket.destroy();
    });
  }

  private heard(report: HandOffReport): void {
    const entry = this.tickets.get(report.ticket);
    if (!entry) return;
    if (report.type === 'tunnel-accepted') {
      if (entry.tunnel) return;
      clearTimeout(entry.timer);
      entry.tunnel = new HandedTunnel(() => this.request({ type: 'tunnel-close', ticket: report.ticket }));
      entry.outcome.accepted(entry.tunnel);
      return;
    }
    if (report.type === 'tunnel-refused') {
      this.settle(report.ticket)?.refused(report.status, report.code);
      return;
    }
    if (entry.tunnel) {
      this.tickets.delete(report.ticket);
      entry.tunnel.emit('close');
      return;
    }
    this.settle(report.ticket)?.failed(new BadGatewayError('the tunnel closed before the streaming proxy answered it'));
  }

  /** Takes a ticket that has not been answered yet out of the table. */
  private settle(ticket: number): HandOffOutcome | undefined {
    const entry = this.tickets.get(ticket);
    if (!entry || entry.tunnel) return undefined;
    clearTimeout(entry.timer);
    this.tickets.delete(ticket);
    return entry.outcome;
  }

  private request(message: HandOffRequest): void {
    if (this.child.connected) this.child.send(message, (error) => void error);
  }

  /** The child exited: the kernel closed every socket it held. */
  private childGone(): void {
    for (const [ticket, entry] of [...this.tickets]) {
      this.tickets.delete(ticket);
      clearTimeout(entry.timer);
      if (entry.tunnel) entry.tunnel.emit('close');
      else entry.outcome.failed(unreachable('it exited'));
    }
  }
}

function unreachable(detail: string): ServiceUnavailableError {
  return new ServiceUnavailableError(`your streaming proxy is not reachable: ${detail}`, 'proxy_unreachable', {
    publicMessage: 'your streaming proxy is not reachable right now; try again in a moment',
  });
}
