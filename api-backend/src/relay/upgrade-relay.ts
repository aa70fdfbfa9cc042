/**
 * The desktop's tunnel upgrade, passed through to a container's proxy (a child proxy of the
 * process driver is handed the socket instead: proxy/tunnel-handoffs.ts). After the proxy accepts the
 * WebSocket handshake, api-backend only splices the two TCP sockets together: frames are neither
 * parsed nor copied here, and the proxy terminates the WebSocket. The caller's token and the
 * query string stay behind; the per-proxy secret and the credential's expiry are added.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { BadGatewayError, errorBody, INTERNAL_HEADER_PREFIX, RateLimitedError, ServiceUnavailableError, type RelayError } from '@ctll/protocol';
import type { ProxyEndpoint } from '../proxy/driver';
import { SECRET_HEADER } from '../proxy/proxy-client';

const DROPPED = new Set(['authorization', 'cookie', 'host']);
/** The most of a refusal's body read from the proxy: its `{error: {code, message}}` is small. */
const MAX_REFUSAL_BYTES = 8 * 1024;

/** How a relayed upgrade ended: the proxy accepted it and the sockets are spliced, or it failed. */
export interface UpgradeOutcome {
  /** The proxy answered 101: from here on the desktop's socket is a tunnel. */
  onSpliced(): void;
  onFailure(error: RelayError): void;
}

/**
 * The upgrade request's headers as the proxy gets them, relayed or handed over: the caller's
 * without its token, cookies, host or anything in our internal namespace; then ours (the
 * credential's expiry, this process's id) and the proxy's secret.
 */
export function proxyUpgradeHeaders(
  req: http.IncomingMessage,
  endpoint: ProxyEndpoint,
  internalHeaders: Record<string, string>,
): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || DROPPED.has(name) || name.startsWith(INTERNAL_HEADER_PREFIX)) continue;
    headers[name] = value;
  }
  Object.assign(headers, internalHeaders);
  headers[SECRET_HEADER] = endpoint.secret;
  return headers;
}

export function relayUpgrade(
  socket: Duplex,
  head: Buffer,
  endpoint: ProxyEndpoint,
  /** From proxyUpgradeHeaders. */
  headers: Record<string, string | string[]>,
  outcome: UpgradeOutcome,
): void {
  const { onFailure } = outcome;

  const upstream = http.request({
    host: endpoint.host,
    port: endpoint.port,
    method: 'GET',
    path: '/ws/tunnel',
    headers,
    timeout: 10_000,
  });

  // A desktop that hangs up while the proxy has not yet answered is gone: no tunnel to open for it.
  const abandon = () => upstream.destroy();
  socket.once('close', abandon);

  upstream.on('upgrade', (answer, proxySocket: Socket, proxyHead: Buffer) => {
    socket.off('close', abandon);
    if (socket.destroyed) {
      proxySocket.destroy();
      return;
    }
    const lines = [`HTTP/1.1 101 ${answer.statusMessage ?? 'Switching Protocols'}`];
    for (let i = 0; i < answer.rawHeaders.length; i += 2) lines.push(`${answer.rawHeaders[i]}: ${answer.rawHeaders[i + 1]}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (proxyHead.length > 0) socket.write(proxyHead);
    if (head.length > 0) proxySocket.write(head);
    for (const s of [proxySocket, socket as Socket]) {
      s.setNoDelay?.(true);
      s.setTimeout?.(0);
      s.setKeepAlive?.(true, 30_000);
    }
    proxySocket.on('error', () => socket.destroy());
    socket.on('error', () => proxySocket.destroy());
    proxySocket.on('close', () => socket.destroy());
    socket.on('close', () => proxySocket.destroy());
    proxySocket.pipe(socket);
    socket.pipe(proxySocket);
    outcome.onSpliced();
  });

  upstream.on('response', (answer) => {
    // A user limit the proxy enforces (too many tunnels, too many requests) reaches the bridge as
    // the proxy said it, Retry-After included; any other refusal is the proxy failing us.
    if (answer.statusCode !== 429) {
      answer.resume();
      onFailure(new BadGatewayError(`the streaming proxy refused the tunnel (${answer.statusCode})`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    answer.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size <= MAX_REFUSAL_BYTES) chunks.push(chunk);
    });
    answer.on('error', () => onFailure(new BadGatewayError('the streaming proxy refused the tunnel (429)')));
    answer.on('end', () => onFailure(limitRefusal(Buffer.concat(chunks).toString('utf8'), answer.headers['retry-after'])));
  });
  upstream.on('timeout', () => upstream.destroy(new Error('timed out')));
  upstream.on('error', (error) => {
    if (socket.destroyed) return; // abandoned by the desktop: nobody to tell
    onFailure(
      new ServiceUnavailableError(`your streaming proxy is not reachable: ${error.message}`, 'proxy_unreachable', {
        publicMessage: 'your streaming proxy is not reachable right now; try again in a moment',
      }),
    );
  });
  upstream.end();
}

function limitRefusal(body: string, retryAfter: string | undefined): RateLimitedError {
  let code: string | undefined;
  let message = 'a limit of your account was reached';
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    if (typeof parsed.error?.code === 'string') code = parsed.error.code;
    if (typeof parsed.error?.message === 'string') message = parsed.error.message;
  } catch {
    // Not our JSON: the status alone still says "slow down".
  }
  const seconds = Number(retryAfter);
  return new RateLimitedError(message, { code, retryAfterSeconds: Number.isFinite(seconds) && seconds > 0 ? seconds : undefined });
}

/** Answers a failed upgrade with an error of the catalogue (Retry-After included); any other error is a 500. */
export function rejectUpgradeWith(socket: Duplex, error: unknown): void {
  const { status, body, headers } = errorBody(error);
  rejectUpgrade(socket, status, body.error.code, body.error.message, headers);
}

/** Answers a failed upgrade on the raw socket, with the same JSON error body as every route. */
function rejectUpgrade(socket: Duplex, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\n` +
      Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('') +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}
