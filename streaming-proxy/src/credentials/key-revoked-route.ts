/**
 * `POST /credentials/revoked` (KEY_REVOKED_PATH): api-backend revoked one of the owner's relay
 * keys; the links it opened are closed now (key-links.ts). The caller is api-backend, already
 * checked by its secret; the body names the key by id only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { keyRevokedRequestSchema, type KeyRevokedAnswer } from '@ctll/protocol';
import type { Logger } from '../logger';
import { sendError, sendJson } from '../http/respond';
import type { KeyLinks } from './key-links';

const MAX_BODY_BYTES = 1024;

export async function keyRevoked(req: IncomingMessage, res: ServerResponse, keyLinks: KeyLinks, logger: Logger): Promise<void> {
  let body = '';
  for await (const chunk of req) {
    body += (chunk as Buffer).toString('utf8');
    if (body.length > MAX_BODY_BYTES) {
      sendError(res, 'payload_too_large', `at most ${MAX_BODY_BYTES} bytes`);
      return;
    }
  }
  let parsed;
  try {
    parsed = keyRevokedRequestSchema.safeParse(JSON.parse(body));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) {
    sendError(res, 'bad_request', 'the body must be {"keyId": "<relay key id>"}');
    return;
  }
  const closed = keyLinks.revoke(parsed.data.keyId);
  logger.info('relay key revoked: closed the links it opened', { keyId: parsed.data.keyId, closed });
  const answer: KeyRevokedAnswer = { closed };
  sendJson(res, 200, answer);
}
