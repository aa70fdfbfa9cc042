/**
 * `ctll-bridge login --server <relay>`: the OAuth 2.0 Device Authorization Grant (RFC 8628). The
 * relay names its identity provider; the person opens the verification URL on any device, enters
 * the code shown here and approves; the refresh token lands in the credentials file (0600), from
 * which a plain `ctll-bridge` then keeps itself signed in.
 */
import * as oidc from 'openid-client';
import { audienceParameters, deviceLoginSettings, discoverIssuer, fetchAuthConfig } from '../auth/sign-in-settings';
import { relayUrlFor, tunnelUrlFor } from '../options';
import { tokenSubject } from '../token';
import { credentialStore, type CommandContext } from './context';

export interface LoginOptions {
  server: string;
  /** Try to open the verification page in a browser (only with a display, never under CI). */
  browser: boolean;
}

export async function login(options: LoginOptions, context: CommandContext): Promise<void> {
  const relayUrl = relayUrlFor(tunnelUrlFor(options.server));
  const settings = deviceLoginSettings(await fetchAuthConfig(relayUrl));
  const provider = await discoverIssuer(settings.issuer, settings.clientId);
  const device = await oidc.initiateDeviceAuthorization(provider, {
    scope: settings.scopes.join(' '),
    ...audienceParameters(settings.audience),
  });
  const say = (line: string) => context.stderr.write(`${line}\n`);
  say(`To sign in to ${options.server}, open ${device.verification_uri} and enter the code ${device.user_code}`);
  if (device.verification_uri_complete) say(`(or open ${device.verification_uri_complete})`);
  say('Waiting for you to approve...');
  if (options.browser && canOpenBrowser(context)) await openBrowser(device.verification_uri_complete ?? device.verification_uri);

  const tokens = await oidc.pollDeviceAuthorizationGrant(provider, device);
  if (!tokens.refresh_token) {
    throw new Error(`the identity provider sent no refresh token: its device client must allow refresh tokens, and the scopes (${settings.scopes.join(' ')}) must include offline_access`);
  }
  const idClaims = tokens.claims();
  const subject = tokenSubject(tokens.access_token) ?? idClaims?.sub;
  const displayName = [idClaims?.name, idClaims?.email].find((value): value is string => typeof value === 'string' && value !== '');
  credentialStore(context).write({
    server: options.server.replace(/\/+$/, ''),
    issuer: settings.issuer,
    clientId: settings.clientId,
    audience: settings.audience,
    scopes: settings.scopes,
    refreshToken: tokens.refresh_token,
    accessToken: tokens.access_token,
    accessTokenExpiresAt: Date.now() + (tokens.expiresIn() ?? 0) * 1000,
    subject,
    displayName,
  });
  say(`Signed in as ${describeUser(displayName, subject)}. Start the bridge with: ctll-bridge`);
}

export function describeUser(displayName: string | undefined, subject: string | undefined): string {
  if (displayName && subject) return `${displayName} (${subject})`;
  return displayName ?? subject ?? 'an unnamed user';
}

/** A browser only where someone sits at a screen: never under CI, over SSH without a display, or in a bare terminal. */
function canOpenBrowser(context: CommandContext): boolean {
  if (context.env.CI || !context.stderr.isTTY) return false;
  if (context.platform === 'win32' || context.platform === 'darwin') return true;
  return Boolean(context.env.DISPLAY || context.env.WAYLAND_DISPLAY);
}

async function openBrowser(url: string): Promise<void> {
  try {
    const { default: open } = await import('open');
    const child = await open(url);
    // The page is a convenience; the URL and code are printed above either way.
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // Same: no browser, no harm.
  }
}
