/**
 * Where the bridge gets the credential it presents to the relay. A fixed `--token` or relay key
 * never changes; a signed-in bridge (`ctll-bridge login`) renews its access token from the stored
 * refresh token before it expires. Transports ask for the current token each time they need one
 * (opening a link, each poll request, an in-band renewal), so none of them keeps a stale copy.
 */
export interface TokenSource {
  /** A credential valid now; renews first when the current one is about to expire. */
  get(): Promise<string>;
  /** When the current credential expires (ms since the epoch), or undefined when it does not. */
  expiresAt(): number | undefined;
  /** Stops any renewal timer; the source is not used afterwards. */
  close(): void;
}

/** A credential given once (`--token`, a relay key): returned as it is, never renewed. */
export class FixedTokenSource implements TokenSource {
  constructor(
    private readonly token: string,
    private readonly expiry?: number,
  ) {}

  get(): Promise<string> {
    return Promise.resolve(this.token);
  }

  expiresAt(): number | undefined {
    return this.expiry;
  }

  close(): void {}
}
