/**
 * The one place where errors become HTTP answers: `{error: {code, message}}` with the status of
 * the error's class. What a caller reads is the error's public message; the full message, its
 * cause and the request id go to the log (a relay failure's message names hosts, engine errors and
 * addresses, which no caller may see). Unknown errors answer 500 with a generic message.
 */
import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { errorBody, RelayError } from '@ctll/protocol';
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

export function errorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
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
