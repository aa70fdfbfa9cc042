/**
 * The relay's signing-key cache against a real JWKS endpoint over HTTP whose keys the test
 * publishes, withdraws and takes down, with short intervals set through the relay's settings:
 * anonymous tokens naming made-up keys cannot lock anyone out, new keys arrive within the refresh
 * interval, withdrawn keys stop working within the cache's max age, and only a JWKS that cannot
 * be reached makes the relay answer 503.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startRelay, type Relay } from '../api-backend/src/app';
import { loadConfig } from '../api-backend/src/config';
import { createLogger } from '../api-backend/src/logger';
import { PROXY_SCRIPT, relayEnv } from './helpers/layout';
import { signingKey, signToken, startJwksServer, type JwksServer, type SigningKey } from './helpers/jwks-server';

const ISSUER = 'https://idp.auth-jwks.test/';
const AUDIENCE = 'https://relay.auth-jwks.test';
const REFRESH_INTERVAL_MS = 2000;
const CACHE_MAX_AGE_MS = 3000;
const MAX_LIFETIME_S = 3600;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('signing keys from a JWKS that changes', () => {
  const k1 = signingKey('k1');
  const forger = signingKey('forger');
  let jwks: JwksServer;
  let relay: Relay;
  let dataDir: string;
  let serial = 0;

  /** A token as the identity provider issues it; a serial number makes each one new to the relay's cache. */
  const sign = (key: SigningKey, sub = 'alice') =>
    signToken(key, { sub, jti: String(++serial) }, { issuer: ISSUER, audience: AUDIENCE, expiresIn: 300 });
  /** Signed by a stranger, naming a key id the identity provider never had. */
  const forged = () => signToken({ ...forger, kid: `made-up-${++serial}` }, { sub: 'mallory' }, { issuer: ISSUER, audience: AUDIENCE, expiresIn: 300 });

  const status = async (token: string) => {
    const res = await fetch(`${relay.url}/api/proxy/status`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, text: await res.text() };
  };

  beforeAll(async () => {
    jwks = await startJwksServer([k1]);
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-auth-jwks-'));
    const env = relayEnv(
      {
        JWT_ISSUER: ISSUER,
        JWT_AUDIENCE: AUDIENCE,
        JWT_JWKS_URI: jwks.uri,
        JWKS_REFRESH_INTERVAL_MS: String(REFRESH_INTERVAL_MS),
        JWKS_CACHE_MAX_AGE_MS: String(CACHE_MAX_AGE_MS),
        JWT_MAX_LIFETIME_S: String(MAX_LIFETIME_S),
      },
      dataDir,
    );
    relay = await startRelay(loadConfig(env, { proxyScript: PROXY_SCRIPT }), createLogger('error'));
  });

  afterAll(async () => {
    await relay?.close();
    await jwks?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers a burst of 100 tokens with made-up key ids with 401, fetching the JWKS at most once per interval, and then accepts a newly published key', async () => {
    expect((await status(sign(k1))).status).toBe(200);
    await sleep(REFRESH_INTERVAL_MS + 200);
    const k2 = signingKey('k2');
    jwks.publish(k2);
    const tokens = Array.from({ length: 100 }, () => forged());
    const before = jwks.fetches;
    const began = Date.now();

    const burst = await Promise.all(tokens.map(status));

    expect(burst.map((answer) => answer.status)).toEqual(Array(100).fill(401));
    expect((await status(sign(k2))).status).toBe(200);
    expect((await status(sign(k1))).status).toBe(200);
    // One fetch per interval begun (on a busy machine the burst itself may outlast one interval).
    expect(jwks.fetches - before).toBeLessThanOrEqual(Math.floor((Date.now() - began) / REFRESH_INTERVAL_MS) + 1);
  });

  it('under a steady flood of made-up key ids fetches the JWKS at most once per interval and keeps accepting known keys', async () => {
    const before = jwks.fetches;
    const began = Date.now();
    const answers: Array<[number, number]> = [];
    while (Date.now() - began < 2 * REFRESH_INTERVAL_MS + 300) {
      const [attack, user] = await Promise.all([status(forged()), status(sign(k1))]);
      answers.push([attack.status, user.status]);
    }
    const elapsed = Date.now() - began;

    expect(new Set(answers.map(([attack]) => attack))).toEqual(new Set([401]));
    expect(new Set(answers.map(([, user]) => user))).toEqual(new Set([200]));
    const fetched = jwks.fetches - before;
    expect(fetched).toBeGreaterThanOrEqual(1);
    expect(fetched).toBeLessThanOrEqual(Math.floor(elapsed / REFRESH_INTERVAL_MS) + 1);
  });

  it('refuses a key published just after a fetch with 401 at once, and accepts it after the refresh interval', async () => {
    const k3 = signingKey('k3');
    const token = sign(k3);
    const trigger = forged();
    await sleep(REFRESH_INTERVAL_MS + 200);
    expect((await status(trigger)).status).toBe(401); // this one fetches
    const fetched = jwks.fetches;
    jwks.publish(k3);

    const early = await status(token);
    expect(early.status).toBe(401);
    expect(jwks.fetches).toBe(fetched);

    await sleep(REFRESH_INTERVAL_MS + 200);
    expect((await status(token)).status).toBe(200);
    expect(jwks.fetches).toBe(fetched + 1);
  });

  it('stops accepting a token, even one it accepted before, once its key is withdrawn from the JWKS and the cache max age has passed', async () => {
    const k4 = signingKey('k4');
    jwks.publish(k4);
    await sleep(REFRESH_INTERVAL_MS + 200);
    const token = sign(k4, 'bob');
    expect((await status(token)).status).toBe(200);
    expect((await status(token)).status).toBe(200);

    jwks.withdraw(k4);
    await sleep(CACHE_MAX_AGE_MS + 500);

    const after = await status(token);
    expect(after.status).toBe(401);
    expect(JSON.parse(after.text)).toEqual({ error: { code: 'unauthorized', message: 'invalid or expired token' } });
    expect((await status(sign(k1))).status).toBe(200);
  });

  it('while the JWKS is down keeps accepting keys it already has, answers an unknown key id with 503 auth_unavailable, and 401 once the JWKS is back', async () => {
    jwks.setDown(true);
    try {
      await sleep(CACHE_MAX_AGE_MS + 200); // the keys are due for a fetch, which fails
      expect((await status(sign(k1))).status).toBe(200);
      const unknown = await status(forged());
      expect(unknown.status).toBe(503);
      expect(JSON.parse(unknown.text).error.code).toBe('auth_unavailable');
      expect(unknown.text).not.toContain(jwks.uri);
    } finally {
      jwks.setDown(false);
    }
    await sleep(REFRESH_INTERVAL_MS + 200);
    expect((await status(forged())).status).toBe(401);
    expect((await status(sign(k1))).status).toBe(200);
  });

  describe('the tunnel upgrade', () => {
    const upgrade = (token: string) =>
      new Promise<{ status: number; body: string; ws?: WebSocket }>((resolve, reject) => {
        const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/ws/tunnel`, { headers: { authorization: `Bearer ${token}` } });
        ws.on('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        ws.on('open', () => resolve({ status: 101, body: '', ws }));
        ws.on('error', (error) => reject(error));
      });

    it('refuses a token naming a made-up key with 401 before any handshake, and starts no proxy', async () => {
      const answer = await upgrade(forged());
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body)).toEqual({ error: { code: 'unauthorized', message: 'invalid or expired token' } });
      await expect(relay.manager.driver.list()).resolves.toHaveLength(0);
    });

    it('opens the tunnel for a token signed with a published key', async () => {
      const answer = await upgrade(sign(k1, 'carol'));
      expect(answer.status).toBe(101);
      await new Promise<void>((resolve) => {
        answer.ws!.once('close', () => resolve());
        answer.ws!.close();
      });
      await expect(relay.manager.driver.list()).resolves.toHaveLength(1);
    });
  });
});
