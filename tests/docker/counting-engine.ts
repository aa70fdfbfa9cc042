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
  /** A point in the requests sent so far, for `requestsSince`. */
  mark(): number;
  /** The request lines (`GET /v1.41/_ping`, ...) sent after `mark`. */
  requestsSince(mark: number): string[];
  close(): Promise<void>;
}

/** A request line; it may follow the previous request's body directly, so nothing is asked of what precedes it. */
const REQUEST_LINE = /(?:GET|HEAD|POST|PUT|DELETE) \/\S* HTTP\/1\.[01](?=\r\n)/g;

export async function countingEngine(): Promise<CountingEngine> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-engine-'));
  const socketPath = path.join(dir, 'docker.sock');
  // docker-modem may hold a function that finds the default socket (rootless, Docker Desktop).
  const configured = (docker.modem as unknown as { socketPath?: string | (() => Promise<string>) }).socketPath;
  const engine = (typeof configured === 'function' ? await configured() : configured) ?? '/var/run/docker.sock';
  // Each connection's bytes are scanned on their own: chunks of parallel connections interleave.
  const requests: string[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(engine);
    let sent = '';
    let scanned = 0;
    client.on('data', (chunk: Buffer) => {
      sent += chunk.toString('latin1');
      const pattern = new RegExp(REQUEST_LINE.source, 'g');
      pattern.lastIndex = scanned;
      for (let match = pattern.exec(sent); match; match = pattern.exec(sent)) {
        requests.push(match[0]);
        scanned = pattern.lastIndex;
      }
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
    inspects: (name) => requests.filter((line) => line.startsWith('GET ') && line.includes(`/containers/${name}/json`)).length,
    mark: () => requests.length,
    requestsSince: (mark) => requests.slice(mark),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        fs.rmSync(dir, { recursive: true, force: true });
      }),
  };
}
