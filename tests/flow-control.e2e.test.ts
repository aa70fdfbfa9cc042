/**
 * Flow control against a real relay (api-backend, a streaming-proxy child per user, the process
 * driver): a hostile desktop that ignores its credit, and one that sends random and mutated
 * frames, while another user streams a generation through the same relay.
 */
import fs from 'node:fs';
import WebSocket from 'ws';
import fc from 'fast-check';
import { encodeControl, encodeData, MAX_CHUNK_BYTES } from '@ctll/protocol';
import { startLayout, type Layout } from './helpers/layout';
import { openRawDesktop, type RawDesktop } from './helpers/raw-desktop';
import { binaryFrameArb, FUZZ_SOCKET_RUNS, streamIdArb, textFrameArb } from './helpers/fuzz';

const MIB = 1024 * 1024;

function openRawTunnel(layout: Layout, userId: string): Promise<RawDesktop> {
  return openRawDesktop(`${layout.relay.url.replace('http', 'ws')}/ws/tunnel`, { authorization: `Bearer ${layout.token(userId)}` });
}

/** Resident memory of a process, from /proc (the proxy is a child process under this driver). */
function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

function chat(layout: Layout, userId: string): Promise<string> {
  return layout.fetchAs(userId, '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) }).then((r) => r.text());
}

describe('a desktop that breaks flow control, on a real relay', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({ llm: { tokenDelayMs: 20, tokens: 100 } });
    await layout.connectBridge('bob');
  }, 120_000); // the embedded audit database's start alone can take long on a busy machine
  afterAll(() => layout?.close());

  it('flooding 300 MiB past its credit gets its tunnel closed with 1008, its proxy grows by less than 32 MiB, and another user streams undisturbed', async () => {
    const bobStream = chat(layout, 'bob');
    const tunnel = await openRawTunnel(layout, 'mallory');
    const { handle } = await layout.relay.manager.ensure('mallory');
    const pid = Number(handle.id);
    // The proxy first serves one honest exchange, as a user's proxy has before anything goes
    // wrong: its start-up and first request are not what this test measures.
    const warm = layout.fetchAs('mallory', '/warm').then((res) => res.arrayBuffer());
    const first = await tunnel.next();
    if (first.type !== 'http_request') throw new Error(`expected a request, got ${first.type}`);
    tunnel.ws.send(encodeControl({ type: 'http_response', id: first.id, status: 200, headers: {}, end: false }));
    tunnel.ws.send(encodeData(first.id, Buffer.alloc(MAX_CHUNK_BYTES, 0x61)), { binary: true });
    tunnel.ws.send(encodeControl({ type: 'end', id: first.id }));
    expect((await warm).byteLength).toBe(MAX_CHUNK_BYTES);
    const baseline = rssBytes(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rssBytes(pid));
      } catch {
        // the proxy is gone: its peak is what was seen
      }
    }, 20);

    // The caller never reads its answer: nothing drains, so no credit comes back.
    const controller = new AbortController();
    const answer = layout.fetchAs('mallory', '/flood', { signal: controller.signal }).catch(() => undefined);
    const request = await tunnel.next();
    if (request.type !== 'http_request') throw new Error(`expected a request, got ${request.type}`);
    tunnel.ws.send(encodeControl({ type: 'http_response', id: request.id, status: 200, headers: { 'content-type': 'application/octet-stream' }, end: false }));
    const frame = encodeData(request.id, Buffer.alloc(MAX_CHUNK_BYTES, 0x66));
    let open = true;
    void tunnel.closed.then(() => (open = false));
    let sent = 0;
    while (open && sent < 300 * MIB) {
      tunnel.ws.send(frame, { binary: true });
      sent += MAX_CHUNK_BYTES;
      if (tunnel.ws.bufferedAmount > 4 * MIB) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(await tunnel.closed).toEqual({ code: 1008, reason: 'flow control violated' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    clearInterval(sampler);
    controller.abort();
    await answer;

    expect(peak - baseline).toBeLessThan(32 * MIB);
    const bobText = await bobStream;
    expect(bobText.trim().split('\n')).toHaveLength(101);
    expect(JSON.parse(bobText.trim().split('\n').at(-1)!)).toMatchObject({ done: true });
    // The proxy is alive and takes the next tunnel.
    const again = await openRawTunnel(layout, 'mallory');
    again.ws.close();
  }, 120_000);

  it('random and mutated frames over a real tunnel never disturb another user streaming through the same relay', async () => {
    const bobStream = chat(layout, 'bob');
    let tunnel = await openRawTunnel(layout, 'eve');
    const caller = layout.fetchAs('eve', '/fuzzed').catch(() => undefined);
    const request = await tunnel.next();
    const ids = streamIdArb(request.type === 'http_request' ? [request.id] : []);
    const frames = fc.sample(
      fc.oneof(textFrameArb(ids).map((text) => ({ text })), binaryFrameArb(ids).map((binary) => ({ binary }))),
      { numRuns: FUZZ_SOCKET_RUNS * 5 },
    );
    let reconnects = 0;
    for (const frame of frames) {
      if (tunnel.ws.readyState !== WebSocket.OPEN) {
        // Closed for a protocol error: a hostile desktop simply dials again.
        tunnel = await openRawTunnel(layout, 'eve');
        reconnects += 1;
      }
      if ('text' in frame) tunnel.ws.send(frame.text);
      else tunnel.ws.send(frame.binary, { binary: true });
    }
    tunnel.ws.close();
    await caller;
    const bobText = await bobStream;
    expect(bobText.trim().split('\n')).toHaveLength(101);
    expect(JSON.parse(bobText.trim().split('\n').at(-1)!)).toMatchObject({ done: true });
    expect(reconnects).toBeGreaterThanOrEqual(0);
  }, 120_000);
});
