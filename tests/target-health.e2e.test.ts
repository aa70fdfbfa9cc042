/**
 * "Your PC is online but Ollama is not running" versus "your PC is offline": the bridge probes its
 * local LLM server, says so on its status line, and tells the relay, whose
 * `GET /api/tunnel/:userId/health` reports it. One scenario per transport (the WebSocket carries a
 * `target` message, long-polling carries it in a heartbeat), through the real relay, proxy and bridge.
 */
import { startBridge, StatusPrinter, type Bridge } from '../bridge/src';
import { startLayout, waitFor, type Layout, type Transport } from './helpers/layout';
import { OLLAMA_TEST_VERSION, startLlmServer, type LlmServer } from './helpers/llm-server';

interface Health {
  desktop: 'online' | 'offline';
  transport: string | null;
  target: { up: boolean; kind: string; version?: string; error?: string; checkedAt: string } | null;
}

interface JsonLine {
  state: string;
  message: string;
  targetHealth?: { up: boolean; error?: string };
}

// Probes often, so each change shows within a couple of seconds; 15 s bounds are generous.
const PROBE_INTERVAL_MS = 200;
const WAIT_MS = 15_000;

describe.each<Transport>(['ws', 'poll'])('target health over %s', (transport) => {
  let layout: Layout;
  let llm: LlmServer | undefined;
  let bridge: Bridge | undefined;
  const lines: string[] = [];
  const jsonLines: JsonLine[] = [];

  beforeAll(async () => {
    // A polling bridge that stops is noticed once it misses the grace period: keep that short.
    layout = await startLayout({ transport, env: transport === 'poll' ? { BRIDGE_POLL_TIMEOUT_MS: '1000', BRIDGE_GRACE_MS: '2000' } : {} });
  });

  afterAll(async () => {
    await bridge?.close();
    await llm?.close();
    await layout?.close();
  });

  const health = async (userId: string): Promise<{ status: number; body: Health }> => {
    const res = await fetch(`${layout.tunnelUrl(userId)}/health`, { headers: { authorization: `Bearer ${layout.token(userId)}` } });
    return { status: res.status, body: (await res.json()) as Health };
  };
  const lastLine = () => lines.at(-1) ?? '';

  it('reports the desktop offline while no bridge is connected', async () => {
    const { status, body } = await health('offline-user');
    expect(status).toBe(200);
    expect(body).toMatchObject({ desktop: 'offline', target: null });
  });

  it('says when the local server goes down and when it comes back, on the status line and in /health', async () => {
    llm = await startLlmServer();
    const { port, url } = llm;
    const printer = new StatusPrinter('text', { write: (text: string) => lines.push(text.trimEnd()) });
    const jsonPrinter = new StatusPrinter('json', { write: (text: string) => jsonLines.push(JSON.parse(text) as JsonLine) });
    bridge = startBridge({
      server: layout.relay.url,
      token: layout.token('carol'),
      target: url,
      transport,
      fallback: false,
      probeIntervalMs: PROBE_INTERVAL_MS,
      onStatus: (status) => {
        printer.status(status);
        jsonPrinter.status(status);
      },
    });
    await bridge.waitConnected(WAIT_MS);

    await waitFor(async () => (await health('carol')).body.target?.up === true, WAIT_MS, 'the relay to hear the target is up');
    const up = (await health('carol')).body;
    expect(up).toMatchObject({ desktop: 'online', transport, target: { up: true, kind: 'ollama', version: OLLAMA_TEST_VERSION } });
    expect(Number.isNaN(Date.parse(up.target!.checkedAt))).toBe(false);
    await waitFor(() => lastLine().includes(`(Ollama ${OLLAMA_TEST_VERSION})`), WAIT_MS, 'the status line to name the target');

    await llm.close();
    // A probe in flight as the server closes may see its socket reset; the ones after it find the
    // port closed, which is what a stopped server looks like from then on.
    await waitFor(async () => (await health('carol')).body.target?.error === 'connection refused', WAIT_MS, 'the relay to hear the target is down');
    const down = (await health('carol')).body;
    expect(down).toMatchObject({ desktop: 'online', transport, target: { up: false, kind: 'ollama', error: 'connection refused' } });
    const downLine = `Ollama not reachable at ${url} (connection refused)`;
    await waitFor(() => lastLine().includes(downLine), WAIT_MS, 'the status line to say the target is down');
    expect(lastLine()).toContain('connected to');
    // --json-logs: the same fact for machines.
    expect(jsonLines.at(-1)).toMatchObject({ state: 'connected', targetHealth: { up: false, error: 'connection refused' } });
    expect(jsonLines.at(-1)!.message).toContain(downLine);

    llm = await startLlmServer({ port });
    await waitFor(async () => (await health('carol')).body.target?.up === true, WAIT_MS, 'the relay to hear the target is back');
    await waitFor(() => lastLine().includes(`(Ollama ${OLLAMA_TEST_VERSION})`), WAIT_MS, 'the status line to recover');
    expect(lastLine()).not.toContain('not reachable');

    await bridge.close();
    await waitFor(async () => (await health('carol')).body.desktop === 'offline', WAIT_MS, 'the relay to see the desktop leave');
    expect((await health('carol')).body.target).toBeNull();
  });
});
