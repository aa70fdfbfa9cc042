/**
 * A unix socket in front of the Docker engine's own: it passes everything through and keeps what
 * clients sent, so a test sees every request a driver or a whole relay makes to the engine. Point
 * a DockerDriver at `socketPath` (dockerOptions), or a relay process at `dockerHost` (DOCKER_HOST).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { docker } from './support';

export interface CountingEngine {
  socketPath: string;
  /** `unix://<socketPath>`, for DOCKER_HOST. */
  dockerHost: string;
  /** How often a GET of this container's inspect was sent. */
  inspects(name: string): number;
  /** A point in what was sent so far, for `requestsSince`. */
  mark(): number;
  /** The request lines (`GET /v1.41/_ping`, ...) sent after `mark`. */
  requestsSince(mark: number): string[];
  close(): Promise<void>;
}

const REQUEST_LINE = /(?:^|\r\n)((?:GET|HEAD|POST|PUT|DELETE) \/\S* HTTP\/1\.[01])\r\n/g;

export async function countingEngine(): Promise<CountingEngine> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-engine-'));
  const socketPath = path.join(dir, 'docker.sock');
  // docker-modem may hold a function that finds the default socket (rootless, Docker Desktop).
  const configured = (docker.modem as unknown as { socketPath?: string | (() => Promise<string>) }).socketPath;
  const engine = (typeof configured === 'function' ? await configured() : configured) ?? '/var/run/docker.sock';
  let sent = '';
  const server = net.createServer((client) => {
    const upstream = net.connect(engine);
    client.on('data', (chunk: Buffer) => {
      sent += chunk.toString('latin1');
      upstream.write(chunk);
    });
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    dockerHost: `unix://${socketPath}`,
    inspects: (name) => sent.split(`GET /containers/${name}/json`).length - 1,
    mark: () => sent.length,
    requestsSince: (mark) => [...sent.slice(mark).matchAll(REQUEST_LINE)].map((match) => match[1]),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        fs.rmSync(dir, { recursive: true, force: true });
      }),
  };
}
