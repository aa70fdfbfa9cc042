/**
 * Entry point: reads the environment once, starts the relay, prints how to use it, and shuts
 * down cleanly on SIGTERM/SIGINT: drains (app.ts, http/drain.ts), then exits 0. An error nobody
 * caught ends the process with a logged line and exit code 70 (crash-policy.ts in protocol/).
 */
import path from 'node:path';
import { installCrashPolicy } from '@ctll/protocol';
import { ConfigError, loadConfig } from './config';
import { createLogger } from './logger';
import { startRelay } from './app';
import { banner } from './banner';

installCrashPolicy('api-backend');

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, { proxyScript: path.join(__dirname, '../../streaming-proxy/dist/streaming-proxy.js') });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`api-backend: ${error.message}\n`);
    process.exit(78);
  }
  const logger = createLogger(config.logLevel);
  const relay = await startRelay(config, logger);
  if (config.auth.mode === 'dev') process.stdout.write(banner(config.publicUrl ?? relay.url));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { component: 'api-backend', signal });
    // The drain may take the whole grace; the proxies' stop and the audit's flush come after it.
    const force = setTimeout(() => {
      logger.error('shutdown took too long; exiting', { component: 'api-backend' });
      process.exit(1);
    }, config.shutdownGraceMs + config.audit.shutdownFlushMs + 15_000);
    force.unref();
    // Exit 1 when a step of the shutdown failed (each is logged); the audit was flushed regardless.
    relay.close().then(
      () => process.exit(0),
      (error: Error) => {
        logger.error(error.message, { component: 'api-backend' });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`api-backend: failed to start: ${(error as Error).message}\n`);
  process.exit(1);
});
