/**
 * Verifies a tunnel's renewal token by asking api-backend (`POST /api/renewals/<owner hash>`,
 * proving itself with the proxy's secret), which checks it with the very policy, keys and relay
 * keys that admitted the tunnel, and compares its subject with this proxy's owner.
 *
 * Why ask rather than verify here: under the docker driver this proxy cannot reach the identity
 * provider's JWKS, and a copy of the keys and claim rules pushed into every proxy would drift from
 * api-backend's (rotated keys, JWT_MAX_LIFETIME_S, relay keys kept as hashes in Postgres). The
 * proxy reaches api-backend already (zrok discovery), and the tunnel's bytes pass through
 * api-backend anyway, so asking it adds no new way to fail.
 */
import { RENEWAL_PATH, RenewalErrorCode, type RenewalVerdict } from '@ctll/protocol';
import { z } from 'zod';
import { SECRET_HEADER } from '../http/secret';
import { requestJson } from '../http/json-request';

export type VerifyRenewal = (token: string) => Promise<RenewalVerdict>;

const verdictSchema = z.union([
  z.object({ accepted: z.literal(true), expiresAt: z.number().int().positive().nullable() }),
  z.object({
    accepted: z.literal(false),
    code: z.enum([RenewalErrorCode.Invalid, RenewalErrorCode.WrongUser, RenewalErrorCode.Unavailable]),
    message: z.string().max(512),
  }),
]);

const unavailable = (message: string): RenewalVerdict => ({ accepted: false, code: RenewalErrorCode.Unavailable, message });

/** A verifier; without api-backend's address (a proxy run on its own) every renewal is "unavailable". */
export function renewalClient(target: { apiBackendUrl?: string; userHash: string; secret: string; timeoutMs?: number }): VerifyRenewal {
  const { apiBackendUrl, userHash, secret } = target;
  if (!apiBackendUrl) return () => Promise.resolve(unavailable('this relay cannot check renewed tokens'));
  const url = `${apiBackendUrl}${RENEWAL_PATH}/${userHash}`;
  const timeoutMs = target.timeoutMs ?? 5000;
  return async (token) => {
    try {
      const res = await requestJson(url, { method: 'POST', headers: { [SECRET_HEADER]: secret }, body: { token }, timeoutMs });
      const parsed = verdictSchema.safeParse(res.body);
      if (res.status < 200 || res.status >= 300 || !parsed.success) return unavailable(`the relay could not check the token now (${res.status})`);
      return parsed.data;
    } catch {
      return unavailable('the relay could not check the token now');
    }
  };
}
