/**
 * The real bridge CLI (bridge/dist/cli.js) in its own process, dialling a relay behind nginx and
 * trusting nginx's test certificate the way Node lets any user: NODE_EXTRA_CA_CERTS.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Nginx } from './nginx';

export const BRIDGE_CLI = path.resolve(__dirname, '../../bridge/dist/cli.js');

export interface BridgeProcess {
  output(): string;
  stop(): Promise<void>;
}

export function startBridgeCli(nginx: Nginx, token: string, target: string, extraArgs: string[] = []): BridgeProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_EXTRA_CA_CERTS: nginx.caFile };
  for (const name of ['http_proxy', 'https_proxy', 'all_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY']) delete env[name];
  const child = spawn(process.execPath, [BRIDGE_CLI, '--server', nginx.url, '--token', token, '--target', target, '--json-logs', ...extraArgs], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited.finally(() => clearTimeout(timer));
    },
  };
}
