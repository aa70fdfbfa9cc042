/**
 * A relay restart as a user lives it: the built api-backend gets a real SIGTERM while a desktop is
 * streaming a 20 s answer through a real bridge. The answer arrives whole; anything new in the
 * meantime is told 503 `draining` (HTTP requests, tunnel upgrades), /health says "draining" so a
 * load balancer goes elsewhere, and the process exits 0 once the answer is done.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startBridge, type Bridge, type BridgeStatus } from '../bridge/src';
import { startLlmServer, type LlmServer } from './helpers/llm-server';
import { freePort, startRelayProcess, type RelayProcess } from './helpers/relay-process';
import { TRANSPORTS } from './helpers/matrix';
import { waitFor } from './helpers/layout';

jest.setTimeout(240_000);

const TOKENS = 100;
const TOKEN_DELAY_MS = 200; // 20 s of answer

/** A plain HTTP/1.1 request, so the raw `Connection` header of the answer can be seen. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; connection?: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: new http.Agent({ keepAlive: true }) }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
      })
      .on('error', reject);
  });
}

/** A tunnel upgrade; resolves with the status of the refusal, or 101 if it opened. */
function tryUpgrade(url: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
    ws.on('open', () => {
      ws.terminate();
      resolve({ status: 101, body: '' });
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', reject);
  });
}

describe.each(TRANSPORTS)('SIGTERM while a desktop streams an answer over %s', (transport) => {
  const user = `drain-${transport}`;
  let llm: LlmServer;
  let dataDir: string;
  let relay: RelayProcess;
  let bridge: Bridge;
  const statuses: BridgeStatus[] = [];

  beforeAll(async () => {
    llm = await startLlmServer({ tokenDelayMs: TOKEN_DELAY_MS, tokens: TOKENS });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-drain-'));
    relay = await startRelayProcess({ PROXY_DRIVER: 'process', SHUTDOWN_GRACE_MS: '60000' }, dataDir, await freePort());
    bridge = startBridge({ server: relay.url, token: relay.token(user), target: llm.url, transport, fallback: false, onStatus: (status) => statuses.push(status) });
    await bridge.waitConnected(15_000);
  });
  afterAll(async () => {
    await bridge?.close();
    await relay?.kill();
    await llm?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('finishes the answer with every token, refuses new work as draining, then exits 0', async () => {
    const auth = { authorization: `Bearer ${relay.token(user)}` };
    const res = await fetch(`${relay.url}/api/tunnel/${user}/api/generate`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'test-model', prompt: 'count', stream: true }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });

    // The answer is under way (about 20 s of it left): now the supervisor stops the relay.
    relay.child.kill('SIGTERM');
    let exitedMidStream = false;
    const reading = (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        text += decoder.decode(value, { stream: true });
        if (relay.child.exitCode !== null) exitedMidStream = true;
      }
    })();

    await waitFor(async () => (await fetch(`${relay.url}/health`)).status === 503, 10_000, '/health to say draining');
    expect(await (await fetch(`${relay.url}/health`)).json()).toEqual({ status: 'draining' });

    const refused = await rawGet(`${relay.url}/api/tunnel/${user}/api/tags`, auth);
    expect(refused.status).toBe(503);
    expect(refused.connection).toBe('close');
    expect(JSON.parse(refused.body)).toEqual({ error: { code: 'draining', message: expect.stringMatching(/restarting/) } });

    const upgrade = await tryUpgrade(`${relay.url.replace('http', 'ws')}/ws/tunnel`, relay.token(`${user}-late`));
    expect(upgrade.status).toBe(503);
    expect(JSON.parse(upgrade.body)).toMatchObject({ error: { code: 'draining' } });

    // Still streaming while all that was refused.
    expect(relay.child.exitCode).toBeNull();
    await reading;
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { response: string; done: boolean });
    expect(lines.filter((line) => !line.done).map((line) => line.response)).toEqual(Array.from({ length: TOKENS }, (_, i) => `tok${i} `));
    expect(lines[lines.length - 1]).toMatchObject({ done: true, done_reason: 'stop' });
    expect(exitedMidStream).toBe(false);

    expect(await relay.exited).toBe(0);
    expect(relay.output()).toMatch(/draining: waiting for requests in flight/);
    if (transport === 'ws') {
      // The tunnel was closed with 1012 "relay restarting" (after the answer), so the bridge knew to come back at once.
      expect(statuses.map((status) => status.reason)).toContain('relay closed 1012 relay restarting');
    }
    expect(relay.output()).not.toMatch(/drain grace over/);
  });
});
