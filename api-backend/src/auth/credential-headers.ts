/**
 * What api-backend tells a user's proxy about the credential of a desktop link it hands over:
 * when it expires (none for a credential that never does) and, for a relay key, the key's id, so
 * revoking the key closes the link (streaming-proxy's credentials/key-links.ts). Never the key.
 */
import { CREDENTIAL_EXPIRES_HEADER, CREDENTIAL_KEY_HEADER } from '@ctll/protocol';
import type { Caller } from './authenticator';

export function credentialHeaders({ expiresAt, key }: Pick<Caller, 'expiresAt' | 'key'>): Record<string, string> {
  return {
    ...(expiresAt === undefined ? {} : { [CREDENTIAL_EXPIRES_HEADER]: String(expiresAt) }),
    ...(key === undefined ? {} : { [CREDENTIAL_KEY_HEADER]: key.id }),
  };
}
