/**
 * Relay keys: long-lived credentials a user makes with `POST /api/keys` for a script or app
 * (`call`: may call the user's own tunnel) or a headless bridge (`bridge`: may connect the user's
 * desktop). A key is presented like a token, `Authorization: Bearer ctll_...`; the prefix tells
 * it apart from a JWT at a glance (and lets secret scanners find a leaked one).
 */
export const RELAY_KEY_PREFIX = 'ctll_';

export const RELAY_KEY_SCOPES = ['bridge', 'call'] as const;
export type RelayKeyScope = (typeof RELAY_KEY_SCOPES)[number];

/** A relay key's credential (`ctll_` + base64url), as opposed to a JWT (three dot-separated parts). */
export function isRelayKey(token: string): boolean {
  return token.startsWith(RELAY_KEY_PREFIX);
}

/** What `GET /api/keys` lists for each key: never the key, never its hash. */
export interface RelayKeyView {
  id: string;
  name: string;
  scope: RelayKeyScope;
  createdAt: string;
  /** null: never expires. */
  expiresAt: string | null;
  /** null: not used yet. Kept to about a minute. */
  lastUsedAt: string | null;
}

/** `POST /api/keys`'s answer: the key, shown this once, and whose it is (the tunnel route names the user). */
export interface CreatedRelayKey extends RelayKeyView {
  key: string;
  userId: string;
}
