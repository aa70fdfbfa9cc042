/**
 * Carries one polling bridge's HTTP request (register, poll, heartbeat, respond: that transport is
 * HTTP by nature) to the user's proxy and the answer back, streaming both ways through pooled
 * keep-alive sockets. Web clients' requests reach the proxy over its frame link instead
 * (frame-relay.ts). Nothing is buffered: the request body is piped with a
 * running byte count against MAX_BODY_BYTES, and the answer's head is flushed the moment it
 * arrives, then its chunks as they come. If the caller goes away, the upstream request is
 * destroyed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bodyFraming, CALLER_ONLY_HEADERS, endToEndHeaders, PayloadTooLargeError, ServiceUnavailableError } from '@ctll/protocol';
import type { ProxyEndpoint } from '../proxy/driver';
import type { ProxyClient } from '../proxy/proxy-client';
import { sendError } from '../http/error-handler';

export interface RelayOptions {
  maxBodyBytes: number;
  /** Safety net for a proxy that stops answering altogether; the proxy enforces REQUEST_TIMEOUT_MS itself. */
  socketTimeoutMs: number;
  onBytes: (direction: 'up' | 'down', bytes: number) => void;
  /** The proxy could not be reached at all (refused, reset before answering, silent). */
  onUnreachable?: () => void;
  /** Our own headers for the proxy (a bridge request's credential expiry), added after the caller's are filtered. */
  internalHeaders?: Record<string, string>;
}

export function relayHttp(
  req: IncomingMessage,
  res: ServerResponse,
  endpoint: ProxyEndpoint,
  /** Path on the proxy, e.g. `/bridge/poll/<id>`. */
  upstreamPath: string,
  client: ProxyClient,
  options: RelayOptions,
): void {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > options.maxBodyBytes) {
    req.resume();
    sendError(res, new PayloadTooLargeError(`the request body exceeds ${options.maxBodyBytes} bytes`));
    return;
  }

  // The body goes on framed as it came (length or chunked), whatever the method: a GET or DELETE
  // body (Ollama's `DELETE /api/delete`) must reach the desktop, not be read as a second request.
  const headers: Record<string, string | string[]> = {
    ...endToEndHeaders(req.headers, CALLER_ONLY_HEADERS),
    ...bodyFraming(req.headers, req.headers['transfer-encoding'] !== undefined),
    ...options.internalHeaders,
  };
  const upstream = client.request(endpoint, {
    method: req.method,
    path: upstreamPath,
    headers,
    timeout: options.socketTimeoutMs,
  });

  let finished = false;
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.byteLength;
    options.onBytes('up', chunk.byteLength);
    if (received > options.maxBodyBytes && !finished) {
      finished = true;
      upstream.destroy();
      req.unpipe(upstream);
      req.resume();
      sendError(res, new PayloadTooLargeError(`the request body exceeds ${options.maxBodyBytes} bytes`));
    }
  });
  req.pipe(upstream);

  let clientLeft = false;
  res.on('close', () => {
    // The web client left before the answer was complete: tell the proxy (and so the desktop).
    if (res.writableFinished) return;
    clientLeft = true;
    upstream.destroy();
  });

  upstream.on('timeout', () => upstream.destroy(new Error('the streaming proxy stopped answering')));
  upstream.on('error', (error) => {
    if (finished) return;
    finished = true;
    // Our own destroy after the client left says nothing about the proxy.
    if (!clientLeft) options.onUnreachable?.();
    if (res.headersSent) {
      res.destroy();
    } else {
      sendError(
        res,
        new ServiceUnavailableError(`your streaming proxy is not reachable: ${error.message}`, 'proxy_unreachable', {
          publicMessage: 'your streaming proxy is not reachable right now; try again in a moment',
        }),
      );
    }
  });

  upstream.on('response', (answer) => {
    if (finished) {
      answer.resume();
      return;
    }
    const status = answer.statusCode ?? 502;
    const answerHeaders: Record<string, string | string[]> = endToEndHeaders(answer.headers);
    if (answer.headers['content-length'] !== undefined) answerHeaders['content-length'] = answer.headers['content-length'];
    res.writeHead(status, answerHeaders);
    // The head goes out at once, but not in a write of its own when the first body bytes are
    // already here: piping starts on the next tick, so a check after it finds them written.
    let bodyStarted = false;
    process.nextTick(() => {
      if (!bodyStarted && !res.writableEnded && !res.destroyed) res.flushHeaders();
    });
    answer.on('data', (chunk: Buffer) => {
      bodyStarted = true;
      options.onBytes('down', chunk.byteLength);
    });
    // pipe with explicit endings rather than stream.pipeline: pipeline makes an AbortController
    // per call and aborts it at the end (a DOMException with a stack trace), a measurable share
    // of a small request's CPU here.
    const settle = (cutOff: boolean) => {
      if (finished) return;
      finished = true;
      // An answer cut off upstream must reach the client as a broken stream, never a clean end.
      if (cutOff) res.destroy();
    };
    answer.pipe(res);
    answer.on('error', () => settle(true));
    answer.on('close', () => {
      if (!answer.complete) settle(true);
    });
    res.on('finish', () => settle(false));
    res.on('close', () => settle(!res.writableFinished));
  });
}
