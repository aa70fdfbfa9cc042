/**
 * The access token of a signed-in bridge (`ctll-bridge login`): renewed from the stored refresh
 * token before it expires, on a timer, so a connection always starts with a token that has most
 * of its life ahead. Providers rotate refresh tokens (the old one stops working once used), so
 * every renewal is written back to the credentials file at once, and the file is read again just
 * before renewing: `ctll-bridge whoami` or a second bridge may have rotated it meanwhile.
 *
 * A refusal of the refresh token itself (revoked, expired) ends the sign-in: `onSignedOut` is
 * called once and every later `get()` rejects with SignedOutError. Anything else (the provider
 * unreachable) is retried with growing pauses while the current token lasts.
 */
import * as oidc from 'openid-client';
import { Backoff } from '@ctll/protocol';
import { SignedOutError } from '../errors';
import { tokenSubject } from '../token';
import type { CredentialStore, StoredCredentials } from './credential-store';
import { isGrantRefused } from './sign-in-settings';
import type { TokenSource } from './token-source';

/** Renew once this share of a token's life has passed... */
const RENEW_AT_SHARE = 0.75;
/** ...but never later than this before it expires. */
const RENEW_MARGIN_MAX_MS = 60_000;

export interface RefreshingTokenSourceOptions {
  store: CredentialStore;
  credentials: StoredCredentials;
  /** The identity provider, discovered (sign-in-settings.ts). */
  provider: oidc.Configuration;
  /** Called once when the refresh token is refused. */
  onSignedOut?: (error: SignedOutError) => void;
  /** A renewal failed for another reason and will be retried. */
  onNotice?: (message: string) => void;
  now?: () => number;
}

export class RefreshingTokenSource implements TokenSource {
  private credentials: StoredCredentials;
  private renewing: Promise<string> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private signedOut: SignedOutError | undefined;
  private closed = false;
  private readonly retries = new Backoff();
  private readonly now: () => number;
  /** The current access token's whole life; for one read from disk, what was left of it then. */
  private lifetimeMs: number;

  constructor(private readonly options: RefreshingTokenSourceOptions) {
    this.credentials = options.credentials;
    this.now = options.now ?? Date.now;
    this.lifetimeMs = Math.max(0, (this.credentials.accessTokenExpiresAt ?? 0) - this.now());
    this.schedule();
  }

  get(): Promise<string> {
    if (this.signedOut) return Promise.reject(this.signedOut);
    return this.fresh() ? Promise.resolve(this.credentials.accessToken!) : this.renew();
  }

  /** True while the current access token has more than the renewal margin left. */
  private fresh(): boolean {
    const { accessToken, accessTokenExpiresAt } = this.credentials;
    return accessToken !== undefined && accessTokenExpiresAt !== undefined && this.now() < this.renewAt(accessTokenExpiresAt);
  }

  expiresAt(): number | undefined {
    return this.credentials.accessTokenExpiresAt;
  }

  /** Who is signed in and the current token, for `whoami`. */
  get current(): StoredCredentials {
    return this.credentials;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** One renewal at a time: callers arriving meanwhile share it. */
  private renew(): Promise<string> {
    this.renewing ??= this.refresh().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  private async refresh(): Promise<string> {
    const onDisk = this.options.store.read();
    // Another process rotated the refresh token: ours is spent, and using it would look like a replay.
    if (onDisk && onDisk.issuer === this.credentials.issuer && onDisk.refreshToken !== this.credentials.refreshToken) {
      this.credentials = onDisk;
      if (this.fresh()) return this.credentials.accessToken!;
    }
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.refreshTokenGrant(this.options.provider, this.credentials.refreshToken);
    } catch (error) {
      if (isGrantRefused(error)) throw this.signOut(error);
      this.scheduleRetry(error as Error);
      throw error;
    }
    const expiresIn = tokens.expiresIn();
    this.credentials = {
      ...this.credentials,
      // Without rotation the provider sends no new one, and the old one stays good.
      refreshToken: tokens.refresh_token ?? this.credentials.refreshToken,
      accessToken: tokens.access_token,
      accessTokenExpiresAt: this.now() + (expiresIn ?? 0) * 1000,
      subject: tokenSubject(tokens.access_token) ?? this.credentials.subject,
    };
    this.lifetimeMs = (expiresIn ?? 0) * 1000;
    this.options.store.write(this.credentials);
    this.retries.reset();
    this.schedule();
    return tokens.access_token;
  }

  private signOut(cause: unknown): SignedOutError {
    if (!this.signedOut) {
      this.signedOut = new SignedOutError(this.credentials.server, { cause });
      clearTimeout(this.timer);
      // The access token may live on a while, but the sign-in is over: `whoami` must not vouch for it.
      this.credentials = { ...this.credentials, accessToken: undefined, accessTokenExpiresAt: undefined };
      if (this.options.store.read()?.refreshToken === this.credentials.refreshToken) this.options.store.write(this.credentials);
      this.options.onSignedOut?.(this.signedOut);
    }
    return this.signedOut;
  }

  /** When a token expiring at `expiresAt` is renewed: after RENEW_AT_SHARE of its life, at most RENEW_MARGIN_MAX_MS before the end. */
  private renewAt(expiresAt: number): number {
    return expiresAt - Math.min(RENEW_MARGIN_MAX_MS, this.lifetimeMs * (1 - RENEW_AT_SHARE));
  }

  /** Renews ahead of expiry, so a connection never has to wait for the provider. */
  private schedule(): void {
    clearTimeout(this.timer);
    if (this.closed || this.signedOut) return;
    const expiresAt = this.credentials.accessTokenExpiresAt;
    if (expiresAt === undefined) return;
    this.timer = setTimeout(() => void this.renew().catch(() => undefined), Math.max(0, this.renewAt(expiresAt) - this.now()));
  }

  private scheduleRetry(error: Error): void {
    if (this.closed) return;
    const delay = this.retries.next();
    this.options.onNotice?.(`could not renew the access token (${error.message}); trying again in ${Math.round(delay / 1000)} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.renew().catch(() => undefined), delay);
  }
}
