import http from 'node:http';
import type { Duplex } from 'node:stream';
import { CatalogueError, errorBody, type ErrorCode, type RelayError } from '@ctll/protocol';
import type { BridgeResponse } from './bridge-exchange';

/** Every error the proxy answers has the relay's shape, `{error: {code, message}}`, and the catalogue's status for its code. */
export function sendError(res: BridgeResponse, code: ErrorCode, message: string): void {
  sendRelayError(res, new CatalogueError(code, message));
}

/** An error of the catalogue, with its status and any Retry-After it carries. */
export function sendRelayError(res: BridgeResponse, error: RelayError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { status, body, headers } = errorBody(error);
  sendJson(res, status, body, headers);
}

export function sendJson(res: BridgeResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Answers an upgrade we will not take, on the raw socket, with the same body and headers. */
export function refuseUpgrade(socket: Duplex, error: RelayError): void {
  const { status, body, headers } = errorBody(error);
  const text = JSON.stringify(body);
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      extra.join('') +
      `Content-Length: ${Buffer.byteLength(text)}\r\n` +
      'Connection: close\r\n\r\n' +
      text,
  );
}
