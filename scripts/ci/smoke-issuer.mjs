// A throwaway identity provider for scripts/ci/deploy-smoke.sh's swarm step, whose relay runs with
// NODE_ENV=production and so refuses dev auth: an RSA key made for this run, its JWKS served on
// HOST (the swarm node's docker_gwbridge gateway, where the stack's tasks reach this machine), and
// one short-lived token for a smoke user. Writes DIR/issuer.env (the three JWT_* settings) and
// DIR/token, then serves until it is stopped.
//
//   node scripts/ci/smoke-issuer.mjs HOST DIR
import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import jwt from 'jsonwebtoken';

const [host, dir] = process.argv.slice(2);
if (!host || !dir) {
  process.stderr.write('usage: node scripts/ci/smoke-issuer.mjs HOST DIR\n');
  process.exit(2);
}

const ISSUER = 'https://issuer.relay.test/';
const AUDIENCE = 'https://relay.test/api';
const kid = randomBytes(8).toString('hex');
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwks = JSON.stringify({ keys: [{ ...createPublicKey(privateKey).export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] });

const server = http.createServer((req, res) => {
  if (req.url !== '/jwks.json') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(jwks);
});
server.listen(0, host, () => {
  const { port } = server.address();
  const token = jwt.sign({ sub: `smoke-${randomBytes(4).toString('hex')}` }, privateKey, { algorithm: 'RS256', keyid: kid, issuer: ISSUER, audience: AUDIENCE, expiresIn: '15m' });
  writeFileSync(path.join(dir, 'token'), `${token}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'issuer.env'), `JWT_ISSUER=${ISSUER}\nJWT_AUDIENCE=${AUDIENCE}\nJWT_JWKS_URI=http://${host}:${port}/jwks.json\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
