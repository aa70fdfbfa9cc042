/**
 * The relay end to end, as a user meets it: an Ollama client and plain fetch against the relay,
 * a real bridge on "the PC", a slow-streaming Ollama-compatible server behind it.
 */
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { Ollama } from 'ollama';
import { startLayout, readChunks, waitFor, type Layout } from './helpers/layout';
import { combinations } from './helpers/matrix';
import { patternBytes } from './helpers/llm-server';
import { BRIDGE_CALL_HEADER } from '@ctll/protocol';

describe.each(combinations())('relay end to end (driver $driver, transport $transport)', ({ driver, transport }) => {
  let layout: Layout;
  const user = 'alice@example.com';

  beforeAll(async () => {
    layout = await startLayout({ driver, transport, llm: { tokenDelayMs: 25, tokens: 12 } });
    await layout.connectBridge(user);
  });
  afterAll(() => layout?.close());

  const ollamaFor = (userId: string, testId = 'x') =>
    new Ollama({ host: layout.tunnelUrl(userId), headers: { authorization: `Bearer ${layout.token(userId)}`, 'x-test-id': testId } });

  it('lists models with the official ollama client', async () => {
    const tags = await ollamaFor(user).list();
    expect(tags.models.map((m) => m.name)).toEqual(['test-model:latest']);
  });

  it('counts relayed requests (ctll_relay_requests_total)', async () => {
    const count = async () => {
      const metrics = await (await fetch(`${layout.relay.metricsUrl}/metrics`)).text();
      return Number(/^ctll_relay_requests_total (\d+)$/m.exec(metrics)?.[1] ?? NaN);
    };
    const before = await count();
    await ollamaFor(user).list();
    expect(await count()).toBe(before + 1);
  });

  it('streams a chat token by token: the first tokens arrive before the model has finished', async () => {
    const stream = await ollamaFor(user, 'chat-stream').chat({
      model: 'test-model',
      messages: [{ role: 'user', content: 'Hello' }],
      stream: true,
      options: { num_predict: 20 },
    });
    const arrivals: Array<{ at: number; content: string }> = [];
    for await (const part of stream) arrivals.push({ at: Date.now(), content: part.message.content });
    expect(arrivals.map((a) => a.content).join('')).toBe(Array.from({ length: 20 }, (_, i) => `tok${i} `).join(''));
    const finished = layout.llm.finishedAt.get('chat-stream')!;
    expect(arrivals[0].at).toBeLessThan(finished);
    // Tokens arrive spread over the generation, not in one burst at the end.
    const beforeFinish = arrivals.filter((a) => a.at < finished).length;
    expect(beforeFinish).toBeGreaterThanOrEqual(15);
  });

  it('streams /api/generate and answers /api/embed', async () => {
    const client = ollamaFor(user);
    let text = '';
    for await (const part of await client.generate({ model: 'test-model', prompt: 'hi', stream: true, options: { num_predict: 5 } })) {
      text += part.response;
    }
    expect(text).toBe('tok0 tok1 tok2 tok3 tok4 ');
    const embedded = await client.embed({ model: 'test-model', input: ['abc', 'hello'] });
    expect(embedded.embeddings).toEqual([
      [3, 0.5, -0.25],
      [5, 0.5, -0.25],
    ]);
  });

  it('streams OpenAI-compatible server-sent events as they are written', async () => {
    const res = await layout.fetchAs(user, '/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-test-id': 'sse' },
      body: JSON.stringify({ model: 'test-model', stream: true, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const chunks = await readChunks(res);
    const text = chunks.map((c) => c.text).join('');
    expect(text.match(/^data: /gm)?.length).toBe(11);
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(chunks[0].at).toBeLessThan(layout.llm.finishedAt.get('sse')!);
    expect(chunks.length).toBeGreaterThanOrEqual(5);
  });

  it('answers many requests in parallel over one tunnel', async () => {
    const client = ollamaFor(user);
    const answers = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        client.chat({ model: 'test-model', messages: [{ role: 'user', content: `q${i}` }], stream: false, options: { num_predict: 3 + (i % 5) } }),
      ),
    );
    answers.forEach((answer, i) => {
      expect(answer.message.content).toBe(Array.from({ length: 3 + (i % 5) }, (_, t) => `tok${t} `).join(''));
    });
  });

  it('carries a large binary response intact, streamed', async () => {
    const size = 48 * 1024 * 1024 + 7;
    const res = await layout.fetchAs(user, `/bytes?n=${size}&seed=3`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(size));
    const hash = createHash('sha256');
    const expected = createHash('sha256');
    let received = 0;
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      expected.update(patternBytes(received, value.byteLength, 3));
      received += value.byteLength;
    }
    expect(received).toBe(size);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
  });

  it('carries a large binary request body intact, both ways', async () => {
    const body = randomBytes(12 * 1024 * 1024);
    const res = await layout.fetchAs(user, '/echo', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    const echoed = Buffer.from(await res.arrayBuffer());
    expect(echoed.byteLength).toBe(body.byteLength);
    expect(Buffer.compare(echoed, body)).toBe(0);
  });

  it('aborts the local request when the web client goes away mid-stream', async () => {
    const controller = new AbortController();
    const res = await layout.fetchAs(user, '/api/chat', {
      method: 'POST',
      body: JSON.stringify({ model: 'test-model', messages: [], options: { num_predict: 400 } }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    const aborted = layout.llm.nextAbort(5000);
    controller.abort();
    await expect(aborted).resolves.toBe('/api/chat');
  });

  it('does not pass the caller’s token or hop-by-hop headers to the desktop', async () => {
    // fetch refuses to send Connection headers, so this one goes through node:http.
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.get(`${layout.tunnelUrl(user)}/headers`, {
        headers: {
          authorization: `Bearer ${layout.token(user)}`,
          'x-custom': 'kept',
          connection: 'keep-alive, x-custom-hop',
          'x-custom-hop': 'dropped',
          cookie: 'a=b',
          'x-ctll-proxy-secret': 'guess',
        },
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
    });
    const { headers } = JSON.parse(body) as { headers: Record<string, string> };
    expect(headers['x-custom']).toBe('kept');
    expect(headers.authorization).toBeUndefined();
    expect(headers.cookie).toBeUndefined();
    expect(headers['x-custom-hop']).toBeUndefined();
    expect(Object.keys(headers).filter((h) => h.startsWith('x-ctll'))).toEqual([]);
    expect(headers.host).toBe(`127.0.0.1:${layout.llm.port}`);
  });

  it("never lets a web client pass its request off as a polling bridge's call: marked as one, it still reaches the desktop", async () => {
    const res = await layout.fetchAs(user, '/headers', { headers: { [BRIDGE_CALL_HEADER]: '1' } });
    // Taken for a bridge call, the proxy's polling routes would have answered 404 themselves.
    expect(res.status).toBe(200);
    const { headers } = (await res.json()) as { headers: Record<string, string> };
    expect(headers[BRIDGE_CALL_HEADER]).toBeUndefined();
  });

  it('passes the desktop’s status codes through', async () => {
    const res = await layout.fetchAs(user, '/status?code=418');
    expect(res.status).toBe(418);
    expect(await res.json()).toEqual({ code: 418 });
  });

  it("refuses another user's tunnel with 403 and a missing token with 401", async () => {
    const res = await fetch(`${layout.tunnelUrl(user)}/api/tags`, { headers: { authorization: `Bearer ${layout.token('mallory')}` } });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: { code: 'forbidden', message: 'this tunnel belongs to another user' } });
    const anonymous = await fetch(`${layout.tunnelUrl(user)}/api/tags`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
  });

  it('answers 503 for a user whose desktop is not connected', async () => {
    const res = await layout.fetchAs('nobody-home', '/api/tags');
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('desktop_offline');
  });

  it('reports the tunnel health by transport', async () => {
    const res = await layout.fetchAs(user, '/health');
    expect(await res.json()).toMatchObject({ connected: true, transport });
  });

  it("reports the WebSocket tunnel's ping round trip, and none over long-polling", async () => {
    const health = async () => (await (await layout.fetchAs(user, '/health')).json()) as { rttMs: number | null; rttAverageMs: number | null };
    if (transport === 'poll') {
      expect(await health()).toMatchObject({ rttMs: null, rttAverageMs: null });
      return;
    }
    // The proxy pings a tunnel as it opens; the pong is back long before this test runs, but wait for it all the same.
    await waitFor(async () => (await health()).rttMs !== null, 10_000, 'the round trip is measured');
    const { rttMs, rttAverageMs } = await health();
    expect(rttMs).toBeGreaterThanOrEqual(0);
    expect(rttAverageMs).toBeGreaterThanOrEqual(0);
  });

  it('answers 502 when the desktop cannot reach its local server, and keeps serving others', async () => {
    const other = 'bob';
    await layout.connectBridge(other, { target: 'http://127.0.0.1:9' });
    const res = await layout.fetchAs(other, '/api/tags');
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('target_unreachable');
    expect(body.error.message).toMatch(/ECONNREFUSED/);
    expect((await layout.fetchAs(user, '/api/tags')).status).toBe(200);
  });

  it('shows a lifecycle in the proxy status', async () => {
    await waitFor(async () => {
      const res = await fetch(`${layout.relay.url}/api/proxy/status`, { headers: { authorization: `Bearer ${layout.token(user)}` } });
      const status = (await res.json()) as { status: string; desktop?: { connected: boolean }; requests?: number };
      return status.status === 'running' && status.desktop?.connected === true && (status.requests ?? 0) > 5;
    }, 5000, 'a running proxy with a connected desktop');
  });
});
