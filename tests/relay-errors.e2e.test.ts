/**
 * The error statuses a web client can meet (the README's error table), each caused for real: a silent desktop,
 * a body over the limit, a relay restart under a connected bridge.
 */
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { combinations } from './helpers/matrix';

describe.each(combinations())('relay errors (driver $driver, transport $transport)', ({ driver, transport }) => {
  let layout: Layout;
  const user = 'carol';

  beforeAll(async () => {
    layout = await startLayout({
      driver,
      transport,
      env: { REQUEST_TIMEOUT_MS: '600', MAX_BODY_BYTES: String(64 * 1024) },
      llm: { tokenDelayMs: 150, tokens: 8 },
    });
    await layout.connectBridge(user);
  });
  afterAll(() => layout?.close());

  it('answers 504 when the desktop does not start answering within REQUEST_TIMEOUT_MS', async () => {
    const res = await layout.fetchAs(user, '/hang');
    expect(res.status).toBe(504);
    expect(await res.json()).toEqual({ error: { code: 'desktop_timeout', message: 'the desktop did not answer within 600 ms' } });
    // The desktop was told to give up, so the local request does not linger.
    await waitFor(() => layout.llm.aborted.includes('/hang'), 3000, 'the local /hang request to be aborted');
  });

  it('lets a generation stream for longer than REQUEST_TIMEOUT_MS: the timeout measures silence', async () => {
    const began = Date.now();
    const res = await layout.fetchAs(user, '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text.trim().split('\n')).toHaveLength(9);
    expect(Date.now() - began).toBeGreaterThan(600); // 8 tokens × 150 ms, each gap shorter than the timeout
  });

  it('answers 413 for a declared body over MAX_BODY_BYTES', async () => {
    const res = await layout.fetchAs(user, '/sha256', { method: 'POST', body: Buffer.alloc(64 * 1024 + 1) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
  });

  it('answers 413 for a chunked body that grows over MAX_BODY_BYTES', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 40; i++) controller.enqueue(new Uint8Array(4096));
        controller.close();
      },
    });
    const res = await layout.fetchAs(user, '/sha256', { method: 'POST', body, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
  });

  it('accepts a body right at the limit', async () => {
    const res = await layout.fetchAs(user, '/sha256', { method: 'POST', body: Buffer.alloc(64 * 1024) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { bytes: number }).bytes).toBe(64 * 1024);
  });

  it('answers 404 with a JSON error for unknown routes', async () => {
    const res = await fetch(`${layout.relay.url}/api/nope`, { headers: { authorization: `Bearer ${layout.token(user)}` } });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });

  it('reconnects the bridge by itself after the relay restarts', async () => {
    await layout.restartRelay();
    await waitFor(async () => (await layout.fetchAs(user, '/api/tags')).status === 200, 15_000, 'the bridge to reconnect');
  });
});
