/**
 * ADMIN_CLAIM: which claim of an access token makes its bearer an operator, as `claim=value`
 * (`roles=ctll-admin`). Identity providers put roles in a string or a list of strings, at the top
 * level (Auth0's namespaced `https://example.com/roles`) or nested (Keycloak's
 * `realm_access.roles`): a top-level claim of exactly that name wins, otherwise a dotted name is
 * followed into nested objects. Only a verified token is ever asked; relay keys carry no claims.
 */
export interface OperatorClaim {
  name: string;
  value: string;
}

const FORMAT = /^([^=\s]+)=(\S+)$/;

/** The setting's text; undefined for an empty one (nobody is an operator). Throws on a malformed one. */
export function parseOperatorClaim(text: string): OperatorClaim | undefined {
  if (text.trim() === '') return undefined;
  const match = FORMAT.exec(text.trim());
  if (!match) throw new Error('expected claim=value, e.g. roles=ctll-admin');
  return { name: match[1], value: match[2] };
}

/** Whether a verified token's payload carries the claim's value (as the string, or in a list of strings). */
export function holdsOperatorClaim(payload: object, claim: OperatorClaim | undefined): boolean {
  if (!claim) return false;
  const found = claimAt(payload as Record<string, unknown>, claim.name);
  if (typeof found === 'string') return found === claim.value;
  return Array.isArray(found) && found.some((item) => item === claim.value);
}

function claimAt(payload: Record<string, unknown>, name: string): unknown {
  if (Object.prototype.hasOwnProperty.call(payload, name)) return payload[name];
  let node: unknown = payload;
  for (const part of name.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.prototype.hasOwnProperty.call(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}
