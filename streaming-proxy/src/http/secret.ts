import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The header api-backend proves itself with. Only api-backend ever learns the secret. */
import { PROXY_SECRET_HEADER as SECRET_HEADER } from '@ctll/protocol';

export { SECRET_HEADER };

/** Constant-time check of the caller's secret (hashing first makes the lengths equal). */
export function secretChecker(secret: string): (req: IncomingMessage) => boolean {
  const expected = createHash('sha256').update(secret).digest();
  return (req) => {
    const given = req.headers[SECRET_HEADER];
    if (typeof given !== 'string') return false;
    return timingSafeEqual(createHash('sha256').update(given).digest(), expected);
  };
}
