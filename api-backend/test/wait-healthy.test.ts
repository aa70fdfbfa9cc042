import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROTOCOL_VERSION } from '@ctll/protocol';
import { NotHealthyError, ProxyVersionError, waitHealthy } from '../src/proxy/wait-healthy';

describe('waitHealthy', () => {
  let server: http.Server;
  let port: number;
  let healthyAfter = 0;
  let probes = 0;
  let healthBody = JSON.stringify({ status: 'ok', protocolVersion: PROTOCOL_VERSION });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      probes += 1;
      res.statusCode = req.url === '/health' && Date.now() >= healthyAfter ? 200 : 503;
      res.end(res.statusCode === 200 ? healthBody : undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('resolves as soon as GET /health answers 200', async () => {
    healthyAfter = Date.now() + 150;
    probes = 0;
    await waitHealthy('127.0.0.1', port, { timeoutMs: 10_000 });
    expect(probes).toBeGreaterThan(1);
  });

  it('gives up at the timeout, saying what it last saw', async () => {
    healthyAfter = Infinity;
    // Long enough for a probe to come back even on a loaded machine, so "last" is the 503 it saw.
    await expect(waitHealthy('127.0.0.1', port, { timeoutMs: 1500 })).rejects.toThrow(/within 1500 ms \(PROXY_START_TIMEOUT_MS; last: HTTP 503\)/);
  });

  it('stops waiting at once when the proxy is known dead', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    closed.close();
    const error = await waitHealthy('127.0.0.1', deadPort, { timeoutMs: 5000, aliveEveryMs: 0, alive: async () => 'container exited (exit code 1)' }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(NotHealthyError);
    expect((error as Error).message).toBe('container exited (exit code 1)');
  });

  it('refuses at once a proxy that speaks another protocol version, saying what to upgrade', async () => {
    healthyAfter = 0;
    healthBody = JSON.stringify({ status: 'ok', protocolVersion: PROTOCOL_VERSION + 1 });
    const began = Date.now();
    const error = await waitHealthy('127.0.0.1', port, { timeoutMs: 20_000 }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(ProxyVersionError);
    expect((error as Error).message).toMatch(new RegExp(`speaks api-backend/proxy protocol ${PROTOCOL_VERSION + 1}, this api-backend speaks ${PROTOCOL_VERSION}.*PROXY_IMAGE`));
    // Not retried until the timeout: another probe cannot change the answer.
    expect(Date.now() - began).toBeLessThan(10_000);
  });

  it('takes a proxy from before versions were reported (no protocolVersion) as speaking version 1', async () => {
    healthyAfter = 0;
    healthBody = JSON.stringify({ status: 'ok' });
    const outcome = waitHealthy('127.0.0.1', port, { timeoutMs: 1500 });
    if (PROTOCOL_VERSION === 1) await expect(outcome).resolves.toBeUndefined();
    else await expect(outcome).rejects.toBeInstanceOf(ProxyVersionError);
  });
});
