/**
 * Composition root of the streaming-proxy: config, logger, stats, hub, server. The same program
 * runs as a child process (process driver) or as PID 1 of the user's container (docker driver).
 */
import { installCrashPolicy } from '@ctll/protocol';
import { loadConfig } from './config';
import { createLogger } from './logger';
import { ProxyStats } from './stats';
import { TunnelHub } from './tunnel/hub';
import { Journal } from './tunnel/journal';
import { createProxyServer } from './http/server';
import { HandedTunnels } from './http/handed-tunnels';
import { ZrokPath } from './zrok/zrok-path';

function main(): void {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(78);
  }
  // An error nobody caught ends this proxy (exit 70, one logged line); api-backend sees the exit
  // and the user's next request starts a fresh one.
  const owner = config.userHash;
  installCrashPolicy('streaming-proxy', { context: () => ({ owner }) });
  const logger = createLogger(config.logLevel, config.userHash);
  const stats = new ProxyStats();
  const journal = new Journal();
  const hub = new TunnelHub(stats, logger, journal);
  const zrok = ZrokPath.fromConfig(config, logger);
  // Forked by api-backend (the process driver): it hands desktops' tunnels over as sockets.
  const handOffs = process.send
    ? new HandedTunnels({ on: (event, listener) => process.on(event, listener), send: (message) => process.send?.(message) }, logger)
    : undefined;
  const server = createProxyServer({ config, logger, stats, hub, journal, zrok, handOffs });

  server.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    logger.info('streaming-proxy listening', { host: config.host, port });
    // The process driver learns the ephemeral port over IPC; in a container the port is fixed.
    process.send?.({ type: 'listening', port });
    zrok?.start();
  });

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info('streaming-proxy shutting down', { signal });
    hub.closeAll(1001, 'proxy shutting down');
    zrok?.close();
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // The process driver's parent going away must not leave an orphan proxy behind.
  process.on('disconnect', () => shutdown('parent disconnected'));
}

main();
