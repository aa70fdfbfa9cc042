/**
 * Every answer carries an `X-Request-Id`, and every log line about a failed request names it, so
 * an error body can stay short (a code and a message, no internals) while the operator still finds
 * the whole story in the log. nginx hands its own `$request_id` on, so one id follows a request
 * through both logs; anything else a client sends is replaced, since it may not be unique or safe
 * to log.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';

const HEADER = 'x-request-id';
const SAFE_ID = /^[A-Za-z0-9._-]{8,128}$/;

export function requestId(trustIncoming: (req: Request) => boolean) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const incoming = req.headers[HEADER];
    const id = typeof incoming === 'string' && SAFE_ID.test(incoming) && trustIncoming(req) ? incoming : randomUUID();
    res.setHeader(HEADER, id);
    next();
  };
}

/** The id this response was given, or a new one for an answer made outside Express (an upgrade). */
export function requestIdOf(res: ServerResponse | undefined, req?: IncomingMessage): string {
  const set = res?.getHeader(HEADER);
  if (typeof set === 'string') return set;
  const incoming = req?.headers[HEADER];
  return typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
}
