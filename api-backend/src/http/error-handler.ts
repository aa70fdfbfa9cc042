/**
 * The one place where errors become HTTP answers: `{error: {code, message}}` with the status of
 * the error's class. Unknown errors answer 500 without their message (it may hold internals) and
 * are logged with their cause.
 */
import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { errorBody, RelayError } from '@ctll/protocol';
import type { Logger } from '../logger';

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
    if (!(error instanceof RelayError)) {
      logger.error('unhandled error', { method: req.method, route: req.route?.path, error: (error as Error)?.stack ?? String(error) });
    } else if (error.status >= 500) {
      logger.warn(error.message, { code: error.code, cause: (error.cause as Error | undefined)?.message });
    }
    sendError(res, error);
  };
}
