/**
 * A stand-in identity provider for auth tests: a real JWKS endpoint over HTTP on 127.0.0.1 whose
 * key set a test can change (publish, withdraw) or take down, counting every fetch; and RSA
 * signing keys that sign RS256 tokens with jsonwebtoken.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  jwk: Record<string, unknown>;
}

export function signingKey(kid: string): SigningKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, jwk: { ...createPublicKey(privateKey).export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}

/** An RS256 token signed with `key`, carrying its kid; `options` may override anything. */
export function signToken(key: SigningKey, claims: object, options: jwt.SignOptions = {}): string {
  return jwt.sign(claims, key.privateKey, { algorithm: 'RS256', keyid: key.kid, ...options });
}

export interface JwksServer {
  uri: string;
  /** JWKS fetches answered or refused so far. */
  readonly fetches: number;
  publish(key: SigningKey): void;
  withdraw(key: SigningKey): void;
  /** While down, every fetch is answered 503. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export async function startJwksServer(initial: SigningKey[] = []): Promise<JwksServer> {
  const keys = new Map(initial.map((key) => [key.kid, key]));
  let fetches = 0;
  let down = false;
  const server = http.createServer((_req, res) => {
    fetches += 1;
    if (down) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('identity provider down');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [...keys.values()].map((key) => key.jwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    get fetches() {
      return fetches;
    },
    publish: (key) => void keys.set(key.kid, key),
    withdraw: (key) => void keys.delete(key.kid),
    setDown: (value) => void (down = value),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
