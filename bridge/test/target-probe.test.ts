/**
 * The target probe against small real HTTP servers: what it recognises, and the reason it gives
 * when the server is there but is not an LLM server, or does not answer in time.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalTarget } from '../src/local-targets';
import { TargetProbe, type TargetState } from '../src/target-probe';

const servers: http.Server[] = [];

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Runs one probe and resolves with its answer. */
function probeOnce(target: string, timeoutMs = 2_000): Promise<TargetState> {
  return new Promise((resolve) => {
    const probe = new TargetProbe(createLocalTarget(new URL(target)), {
      intervalMs: 60_000,
      timeoutMs,
      onChange: (state) => {
        probe.stop();
        resolve(state);
      },
    });
    probe.start();
  });
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe('target probe', () => {
  it('recognises an OpenAI-compatible server by /v1/models, also when the target already ends in /v1', async () => {
    const base = await serve((req, res) => {
      res.writeHead(req.url === '/v1/models' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(req.url === '/v1/models' ? '{"object":"list","data":[]}' : '{"error":"not found"}');
    });
    expect(await probeOnce(base)).toEqual({ up: true, kind: 'openai' });
    expect(await probeOnce(`${base}/v1`)).toEqual({ up: true, kind: 'openai' });
  });

  it('counts a server that answers neither as down, saying what it answered', async () => {
    const base = await serve((_req, res) => {
      res.writeHead(404);
      res.end('nothing here');
    });
    expect(await probeOnce(base)).toEqual({ up: false, kind: 'unknown', error: 'answered HTTP 404 to /api/version and HTTP 404 to /v1/models' });
  });

  it('gives up on a server that accepts the connection but never answers', async () => {
    const base = await serve(() => undefined);
    expect(await probeOnce(base, 300)).toEqual({ up: false, kind: 'unknown', error: 'no answer within 0.3 s' });
  });
});
