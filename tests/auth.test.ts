/**
 * Token checks against a real JWKS endpoint over HTTP, with the relay configured as for a real
 * identity provider (JWT_ISSUER / JWT_AUDIENCE / JWT_JWKS_URI).
 */
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, createPublicKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { startRelay, type Relay } from '../api-backend/src/app';
import { loadConfig } from '../api-backend/src/config';
import { createLogger } from '../api-backend/src/logger';
import { PROXY_SCRIPT, relayEnv } from './helpers/layout';

const ISSUER = 'https://idp.test/';
const AUDIENCE = 'https://relay.test';

function keyPair(): { privateKey: KeyObject; jwk: Record<string, unknown> } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, jwk: { ...createPublicKey(privateKey).export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' } };
}

describe('authentication with a JWKS identity provider', () => {
  const idp = keyPair();
  let jwksServer: http.Server;
  let jwksHits = 0;
  let relay: Relay;
  let dataDir: string;

  const sign = (claims: object, options: jwt.SignOptions = {}, key: KeyObject | string = idp.privateKey) => {
    const expiry = 'exp' in claims ? {} : { expiresIn: 300 };
    return jwt.sign(claims, key as jwt.Secret, { algorithm: 'RS256', keyid: 'k1', issuer: ISSUER, audience: AUDIENCE, ...expiry, ...options });
  };

  const status = async (token?: string) => {
    const res = await fetch(`${relay.url}/api/proxy/status`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
  };

  beforeAll(async () => {
    jwksServer = http.createServer((_req, res) => {
      jwksHits += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [idp.jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const jwksUri = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-auth-'));
    const env = relayEnv({ JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, JWT_JWKS_URI: jwksUri }, dataDir);
    relay = await startRelay(loadConfig(env, { proxyScript: PROXY_SCRIPT }), createLogger('error'));
  });

  afterAll(async () => {
    await relay.close();
    await new Promise((resolve) => jwksServer.close(resolve));
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('accepts an RS256 token from the configured issuer and audience, using keys fetched from the JWKS', async () => {
    const result = await status(sign({ sub: 'alice' }));
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({ status: 'not-found' });
    expect(jwksHits).toBeGreaterThan(0);
  });

  /** Refused tokens so far with this reason, as /metrics counts them for the operator. */
  const failures = async (reason: string) => {
    const metrics = await (await fetch(`${relay.metricsUrl}/metrics`)).text();
    const line = metrics.split('\n').find((l) => l.startsWith(`ctll_auth_failures_total{reason="${reason}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const nowS = () => Math.floor(Date.now() / 1000);

  it.each([
    ['no token at all', undefined, 'credentials_required', 'a bearer token is required'],
    ['a token from another issuer', () => sign({ sub: 'alice' }, { issuer: 'https://evil.test/' }), 'wrong_issuer'],
    ['a token for another audience', () => sign({ sub: 'alice' }, { audience: 'https://other' }), 'wrong_audience'],
    ['an expired token', () => sign({ sub: 'alice', exp: nowS() - 60 }), 'token_expired'],
    ['a token signed by a key not in the JWKS', () => sign({ sub: 'alice' }, {}, keyPair().privateKey), 'bad_signature'],
    ['a token with no subject', () => sign({}), 'no_subject'],
    ['a token without exp', () => jwt.sign({ sub: 'alice' }, idp.privateKey, { algorithm: 'RS256', keyid: 'k1', issuer: ISSUER, audience: AUDIENCE }), 'no_expiry'],
    ['a token living longer than JWT_MAX_LIFETIME_S (default 7 days)', () => sign({ sub: 'alice', iat: nowS(), exp: nowS() + 8 * 86400 }), 'lifetime_too_long'],
    ['a token without iat that stays valid longer than JWT_MAX_LIFETIME_S', () => sign({ sub: 'alice', exp: nowS() + 8 * 86400 }, { noTimestamp: true }), 'lifetime_too_long'],
    ['a token issued long ago with a far-away expiry', () => sign({ sub: 'alice', iat: nowS() - 30 * 86400, exp: nowS() + 60 }), 'lifetime_too_long'],
    ['a token naming a key the JWKS does not have', () => sign({ sub: 'alice' }, { keyid: 'made-up' }, keyPair().privateKey), 'unknown_key'],
    ['a token whose kid is not a string', () => sign({ sub: 'alice' }, { header: { alg: 'RS256', kid: 42 } as unknown as jwt.JwtHeader }), 'unknown_key'],
    ['garbage', () => 'not.a.jwt', 'invalid_token'],
  ])('refuses %s with 401, a generic message and the reason counted', async (_name, token, reason, message = 'invalid or expired token') => {
    const before = await failures(reason);
    const result = await status(typeof token === 'function' ? token() : token);
    expect(result.status).toBe(401);
    expect(result.body).toEqual({ error: { code: 'unauthorized', message } });
    expect(JSON.stringify(result.body)).not.toContain(ISSUER);
    expect(JSON.stringify(result.body)).not.toContain(AUDIENCE);
    expect(await failures(reason)).toBe(before + 1);
  });

  it('accepts a token whose lifetime is just within JWT_MAX_LIFETIME_S', async () => {
    expect((await status(sign({ sub: 'alice', iat: nowS(), exp: nowS() + 7 * 86400 - 60 }))).status).toBe(200);
  });

  it('refuses an HS256 token signed with the public key (algorithm confusion)', async () => {
    const publicPem = createPublicKey(idp.privateKey).export({ type: 'spki', format: 'pem' }).toString();
    const forged = jwt.sign({ sub: 'alice' }, publicPem, { algorithm: 'HS256', keyid: 'k1', issuer: ISSUER, audience: AUDIENCE, expiresIn: 300 });
    const before = await failures('wrong_algorithm');
    expect((await status(forged)).status).toBe(401);
    expect(await failures('wrong_algorithm')).toBe(before + 1);
  });

  it('refuses an unsigned token (alg none)', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT', kid: 'k1' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url');
    const before = await failures('wrong_algorithm');
    expect((await status(`${header}.${payload}.`)).status).toBe(401);
    expect(await failures('wrong_algorithm')).toBe(before + 1);
  });

  it('answers a WebSocket upgrade with a bad token with 401 before any handshake', async () => {
    const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/ws/tunnel`, { headers: { authorization: 'Bearer nope' } });
    const statusCode = await new Promise<number>((resolve, reject) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('the upgrade was accepted')));
      ws.on('error', () => undefined);
    });
    expect(statusCode).toBe(401);
    await expect(relay.manager.driver.list()).resolves.toHaveLength(0);
  });

  it('keeps /health open without a token, and counts refused tokens in the private /metrics', async () => {
    expect((await fetch(`${relay.url}/health`)).status).toBe(200);
    const metrics = await (await fetch(`${relay.metricsUrl}/metrics`)).text();
    expect(metrics).toContain('ctll_auth_failures_total');
  });
});
