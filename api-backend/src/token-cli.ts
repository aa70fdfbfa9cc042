/**
 * `npm run token -- <userId>`: prints a dev token signed with the relay's dev key (DATA_DIR).
 * Dev auth only: with a real identity provider configured, tokens come from it.
 */
import path from 'node:path';
import { ConfigError, loadConfig } from './config';
import { loadOrCreateDevKeys, signDevToken } from './auth/dev-keys';

function main(): void {
  const [userId, ...rest] = process.argv.slice(2);
  if (!userId || rest.length > 0 || userId.startsWith('-')) {
    process.stderr.write('usage: npm run --silent token -- <userId>\n');
    process.exit(2);
  }
  let config;
  try {
    config = loadConfig(process.env, { proxyScript: path.join(__dirname, '../../streaming-proxy/dist/streaming-proxy.js') });
  } catch (error) {
    process.stderr.write(`token: ${(error as Error).message}\n`);
    process.exit(error instanceof ConfigError ? 78 : 1);
  }
  if (config.auth.mode !== 'dev') {
    process.stderr.write('token: a real identity provider is configured; get tokens from it, not from the relay\n');
    process.exit(2);
  }
  const keys = loadOrCreateDevKeys(config.auth.keyDir);
  process.stdout.write(`${signDevToken(keys, {
      sub: userId,
      issuer: config.auth.issuer,
      audience: config.auth.audience,
      // As long as the relay accepts (JWT_MAX_LIFETIME_S): a desktop bridge keeps one token for days.
      expiresInSeconds: config.auth.maxLifetimeS,
    })}\n`);
}

main();
