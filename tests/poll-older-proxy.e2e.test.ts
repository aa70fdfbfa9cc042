/**
 * A polling bridge whose proxy predates bridge calls: after an upgrade the docker driver keeps a
 * running proxy whose protocol version matches, and until it is replaced api-backend carries the
 * bridge's own calls to it as HTTP requests (relay/http-relay.ts) instead of on the frame link.
 * The proxy here is this source with its hello's `bridgeCalls` offer taken out
 * (helpers/proxy-without-bridge-calls.ts), run by the real api-backend under the process driver, with
 * a real polling bridge: registration, short answers, a streamed chat, and bodies of several
 * windows each way must all work as they do on the frame link.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../api-backend/src/logger';
import { ProxyLinkPool } from '../api-backend/src/relay/proxy-link';
import { startLayout, type Layout } from './helpers/layout';
import { patternBytes } from './helpers/llm-server';
import { buildProxyWithoutBridgeCalls } from './helpers/proxy-without-bridge-calls';

const USER = 'olga-older-proxy';
let layout: Layout;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-older-proxy-'));
  const script = path.join(dir, 'streaming-proxy.js');
  await buildProxyWithoutBridgeCalls(script);
  layout = await startLayout({ driver: 'process', transport: 'poll', env: { PROXY_SCRIPT: script } });
  await layout.connectBridge(USER);
}, 180_000);

afterAll(async () => {
  await layout?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a polling bridge through a proxy that predates bridge calls', () => {
  it('meets a proxy that does not offer bridge calls, so the calls went as HTTP', async () => {
    const endpoint = await layout.relay.manager.endpoint(USER);
    expect(endpoint).not.toBeNull();
    const pool = new ProxyLinkPool({ openTimeoutMs: 5_000, logger: createLogger('error') });
    try {
      const link = await pool.get(endpoint!);
      expect(link.acceptsBridgeCalls).toBe(false);
    } finally {
      pool.close();
    }
  });

  it('serves short answers and a streamed chat', async () => {
    const tags = await layout.fetchAs(USER, '/api/tags');
    expect(tags.status).toBe(200);
    expect(((await tags.json()) as { models: Array<{ name: string }> }).models[0].name).toBe('test-model:latest');

    const chat = await layout.fetchAs(USER, '/api/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'test-model', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 20 } }),
    });
    expect(chat.status).toBe(200);
    const lines = (await chat.text()).trim().split('\n').map((line) => JSON.parse(line) as { done: boolean; message: { content: string } });
    expect(lines).toHaveLength(21);
    expect(lines.slice(0, 20).map((line) => line.message.content).join('')).toBe(Array.from({ length: 20 }, (_, i) => `tok${i} `).join(''));
    expect(lines[20].done).toBe(true);
  });

  it('carries bodies of several windows each way, byte for byte', async () => {
    const size = 3 * 1024 * 1024 + 12_345;
    const down = await layout.fetchAs(USER, `/bytes?n=${size}&seed=5`);
    expect(down.status).toBe(200);
    expect(Buffer.from(await down.arrayBuffer()).equals(patternBytes(0, size, 5))).toBe(true);

    const text = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil(size / 36)).slice(0, size);
    const up = await layout.fetchAs(USER, '/request', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: text });
    expect(up.status).toBe(200);
    const echoed = (await up.json()) as { method: string; body: string };
    expect(echoed.method).toBe('POST');
    expect(echoed.body.length).toBe(size);
    expect(echoed.body === text).toBe(true);
  });
});
