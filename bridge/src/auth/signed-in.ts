/**
 * A signed-in bridge's token source, from what `ctll-bridge login` stored: the provider is
 * discovered again at each start (its endpoints may move; the issuer may not).
 */
import type { CredentialStore, StoredCredentials } from './credential-store';
import { RefreshingTokenSource, type RefreshingTokenSourceOptions } from './refreshing-token-source';
import { discoverIssuer } from './sign-in-settings';

export async function signedInTokenSource(
  store: CredentialStore,
  credentials: StoredCredentials,
  events: Pick<RefreshingTokenSourceOptions, 'onSignedOut' | 'onNotice'> = {},
): Promise<RefreshingTokenSource> {
  const provider = await discoverIssuer(credentials.issuer, credentials.clientId);
  return new RefreshingTokenSource({ store, credentials, provider, ...events });
}
