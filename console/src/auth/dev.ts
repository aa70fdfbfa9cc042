/** Dev auth only: the relay's dev issuer signs a short token for a user id typed on this machine. */
import { DEV_TOKEN_PATH, type DevTokenResponse } from '@ctll/protocol/src/auth-config';
import { toError } from '../api';

export async function devSignIn(userId: string): Promise<DevTokenResponse> {
  const res = await fetch(DEV_TOKEN_PATH, {
    method: 'POST',
    credentials: 'omit',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  });
  if (!res.ok) throw await toError(res);
  return (await res.json()) as DevTokenResponse;
}
