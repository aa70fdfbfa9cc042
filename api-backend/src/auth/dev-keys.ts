/**
 * Dev auth's signing key: an RSA key pair made in DATA_DIR on first start. The relay serves the
 * public half as a JWKS and validates dev tokens through the same key store and checks as a real
 * identity provider's, so dev mode exercises production's code, not a shortcut.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';

export interface DevKeys {
  kid: string;
  privateKeyPem: string;
  jwks: { keys: JsonWebKey[] };
}

const PRIVATE_KEY_FILE = 'private.pem';

export function loadOrCreateDevKeys(keyDir: string): DevKeys {
  const file = path.join(keyDir, PRIVATE_KEY_FILE);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(keyDir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    // wx: two relays starting at once on one DATA_DIR must not overwrite each other's key.
    try {
      fs.writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  const privateKeyPem = fs.readFileSync(file, 'utf8');
  const jwk = createPublicKey(createPrivateKey(privateKeyPem)).export({ format: 'jwk' });
  // RFC 7638 thumbprint as the key id: stable for the key, different for any other.
  const kid = createHash('sha256')
    .update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n }))
    .digest('base64url');
  return { kid, privateKeyPem, jwks: { keys: [{ ...jwk, kid, alg: 'RS256', use: 'sig' }] } };
}

export function signDevToken(
  keys: DevKeys,
  claims: { sub: string; issuer: string; audience: string; expiresInSeconds?: number },
  /** More claims to carry (tests give an operator's role this way). */
  extra: object = {},
): string {
  return jwt.sign({ ...extra }, keys.privateKeyPem, {
    algorithm: 'RS256',
    keyid: keys.kid,
    subject: claims.sub,
    issuer: claims.issuer,
    audience: claims.audience,
    // Always an expiry: the relay refuses tokens without one, and longer than JWT_MAX_LIFETIME_S.
    expiresIn: claims.expiresInSeconds ?? 24 * 3600,
  });
}
