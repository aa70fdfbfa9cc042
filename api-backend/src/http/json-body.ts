/**
 * Small JSON bodies for control-plane routes (relayed traffic never passes through here: it
 * streams). express.json's own failures carry no RelayError class, so they would surface as 500s;
 * this turns them into the catalogue's 400 and 413 with a message the caller can act on.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { BadRequestError, PayloadTooLargeError } from '@ctll/protocol';

export function jsonBody(limitBytes: number) {
  const parse = express.json({ limit: limitBytes, strict: true });
  return (req: Request, res: Response, next: NextFunction): void => {
    parse(req, res, (error?: unknown) => {
      if (!error) return next();
      const type = (error as { type?: string }).type;
      if (type === 'entity.too.large') return next(new PayloadTooLargeError(`the JSON body exceeds ${limitBytes} bytes`));
      if (type === 'entity.parse.failed') return next(new BadRequestError('the body is not valid JSON'));
      next(new BadRequestError(`cannot read the body: ${(error as Error).message}`));
    });
  };
}
