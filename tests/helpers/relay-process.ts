/**
 * The built api-backend (`api-backend/dist/main.js`) as a child process, for tests where the
 * process itself matters: a real SIGTERM, a real exit code, a restart on the same port and data
 * directory. Its log lines are kept for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { loadOrCreateDevKeys, signDevToken } from '../../api-backend/src/auth/dev-keys';
import { relayEnv, waitFor } from './layout';

export const RELAY_MAIN = path.resolve(__dirname, '../../api-backend/dist/main.js');

export interface RelayProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  token(userId: string): string;
  /** SIGKILL if still running; for clean-up. */
  kill(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Starts the relay (with `nodeArgs` for node itself, e.g. `-r <file>`) and waits until /health answers 200. */
export async function startRelayProcess(env: Record<string, string>, dataDir: string, port: number, nodeArgs: string[] = []): Promise<RelayProcess> {
  const child = spawn(process.execPath, [...nodeArgs, RELAY_MAIN], {
    env: { PATH: process.env.PATH ?? '', ...relayEnv({ LOG_LEVEL: 'info', ...env }, dataDir, port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  let gone = false;
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${port}`;
  let health = 'no answer';
  const answered = async () => {
    const res = await fetch(`${url}/health`).catch(() => undefined);
    if (res) health = `${res.status} ${await res.text()}`;
    return res?.status === 200;
  };
  // Generous: PGlite's first start on a busy machine takes a while.
  await waitFor(async () => gone || (await answered()), 120_000, 'api-backend to answer /health').catch(async (error: Error) => {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`${error.message} (last: ${health}); its output:\n${output}`);
  });
  if (gone) throw new Error(`api-backend exited during start-up:\n${output}`);
  const keys = loadOrCreateDevKeys(path.join(dataDir, 'dev-auth'));
  return {
    url,
    port,
    child,
    output: () => output,
    exited,
    token: (userId) => signDevToken(keys, { sub: userId, issuer: 'urn:ctll:dev', audience: 'ctll-relay', expiresInSeconds: 3600 }),
    async kill() {
      if (!gone) child.kill('SIGKILL');
      await exited;
    },
  };
}
