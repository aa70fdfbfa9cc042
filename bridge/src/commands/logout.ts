/**
 * `ctll-bridge logout`: revokes the stored refresh token at the identity provider (RFC 7009), so a
 * copy of the file is worth nothing, then deletes the file. A provider that cannot be reached
 * still gets the file deleted, with a warning that the token may outlive it.
 */
import * as oidc from 'openid-client';
import { discoverIssuer } from '../auth/sign-in-settings';
import { credentialStore, type CommandContext } from './context';

/** True when a sign-in was removed. */
export async function logout(context: CommandContext): Promise<boolean> {
  const store = credentialStore(context);
  const credentials = store.read();
  if (!credentials) {
    context.stderr.write('Not signed in.\n');
    return false;
  }
  try {
    const provider = await discoverIssuer(credentials.issuer, credentials.clientId);
    await oidc.tokenRevocation(provider, credentials.refreshToken, { token_type_hint: 'refresh_token' });
  } catch (error) {
    context.stderr.write(`ctll-bridge: could not revoke the sign-in at the identity provider (${(error as Error).message}); deleting it here anyway\n`);
  }
  store.remove();
  context.stderr.write(`Signed out of ${credentials.server}.\n`);
  return true;
}
