/**
 * Desktops' tunnels handed to this proxy as sockets by api-backend, its parent process (the
 * process driver; protocol/src/tunnel-handoff.ts has the contract). Each one goes through the very
 * upgrade path of a tunnel relayed to our port, with the request api-backend parsed, so the secret,
 * revoked keys and the user's limits are checked the same way; api-backend hears whether it was
 * accepted or refused (the refusal is written to the desktop here) and when its socket closed.
 */
import http from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { handOffRequestSchema, type HandOffReport, type RelayError, type TunnelHandOff } from '@ctll/protocol';
import type { Logger } from '../logger';

/** How a handed upgrade went; a tunnel that ends without either simply closes. */
export interface TunnelWatch {
  accepted(): void;
  refused(error: RelayError): void;
}

export type AcceptDesktop = (req: http.IncomingMessage, socket: Duplex, head: Buffer, watch?: TunnelWatch) => void;

/** The IPC channel to the parent, as `process` is one when forked with 'ipc'. */
export interface ParentChannel {
  on(event: 'message', listener: (message: unknown, handle?: unknown) => void): unknown;
  send?(message: HandOffReport): unknown;
}

export class HandedTunnels {
  private readonly open = new Map<number, Socket>();

  constructor(
    private readonly parent: ParentChannel,
    private readonly logger: Logger,
  ) {}

  /** Starts taking tunnels from the parent; `accept` is the proxy server's upgrade path. */
  serve(accept: AcceptDesktop): void {
    this.parent.on('message', (message, handle) => {
      const parsed = handOffRequestSchema.safeParse(message);
      if (!parsed.success) return; // another message of the channel
      const request = parsed.data;
      if (request.type === 'tunnel-close') {
        this.open.get(request.ticket)?.destroy();
        return;
      }
      if (!(handle instanceof Socket)) {
        this.logger.warn('a handed tunnel arrived without its socket', { ticket: request.ticket });
        this.report({ type: 'tunnel-closed', ticket: request.ticket });
        return;
      }
      this.take(request, handle, accept);
    });
  }

  private take(request: TunnelHandOff, socket: Socket, accept: AcceptDesktop): void {
    const { ticket } = request;
    this.open.set(ticket, socket);
    // As api-backend set them on a tunnel it spliced: the socket options are its own, not the fd's.
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      this.open.delete(ticket);
      this.report({ type: 'tunnel-closed', ticket });
    });
    accept(upgradeRequest(socket, request), socket, Buffer.from(request.head, 'base64'), {
      accepted: () => this.report({ type: 'tunnel-accepted', ticket }),
      refused: (error) => this.report({ type: 'tunnel-refused', ticket, status: error.status, code: error.code }),
    });
  }

  private report(message: HandOffReport): void {
    this.parent.send?.(message);
  }
}

/** The upgrade request as our HTTP server would have parsed it from api-backend. */
function upgradeRequest(socket: Socket, request: TunnelHandOff): http.IncomingMessage {
  const req = new http.IncomingMessage(socket);
  req.method = 'GET';
  req.url = '/ws/tunnel';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.httpVersion = '1.1';
  req.headers = request.headers;
  return req;
}
