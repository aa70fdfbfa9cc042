/**
 * The one place where errors become HTTP answers: `{error: {code, message}}` with the status of
 * the error's class. What a caller reads is the error's public message; the full message, its
 * cause and the request id go to the log (a relay failure's message names hosts, engine errors and
 * addresses, which no caller may see). Unknown errors answer 500 with a generic message.
 */
import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { BadRequestError, errorBody, PayloadTooLargeError, RelayError } from '@ctll/protocol';
import type { Logger } from '../logger';
import { requestIdOf } from './request-id';

export function sendError(res: ServerResponse, error: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { status, body, headers } = errorBody(error);
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Express and its body parsers refuse bad input with errors of their own that carry a 4xx
 * `status` (a path segment that is not valid percent-encoding, a JSON body that does not parse):
 * the caller's mistake, answered as ours, never a 500.
 */
function fromFramework(error: unknown): unknown {
  if (error instanceof RelayError) return error;
  const status = (error as { status?: unknown } | undefined)?.status;
  if (typeof status !== 'number' || status < 400 || status > 499) return error;
  if (status === 413) return new PayloadTooLargeError('the request body is too large');
  return new BadRequestError('the request is malformed (a path that is not valid percent-encoding, or a body that does not parse)');
}

/** `onError` hears each answer's code and status (the operator's recent errors, operator/recent-errors.ts). */
export function errorHandler(logger: Logger, onError?: (code: string, status: number) => void) {
  return (raw: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const error = fromFramework(raw);
    if (onError) {
      const { status, body } = errorBody(error);
      onError(body.error.code, status);
    }
    if (error !== raw) logger.debug('malformed request', { requestId: requestIdOf(res, req), error: (raw as Error).message });
    const requestId = requestIdOf(res, req);
    if (!(error instanceof RelayError)) {
      logger.error('unhandled error', { requestId, method: req.method, route: req.route?.path, error: (error as Error)?.stack ?? String(error) });
    } else if (error.status >= 500) {
      logger.warn(error.message, { requestId, code: error.code, cause: (error.cause as Error | undefined)?.message });
    } else {
      logger.debug(error.message, { requestId, code: error.code, status: error.status });
    }
    sendError(res, error);
  };
}
