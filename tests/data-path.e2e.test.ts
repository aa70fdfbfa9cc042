/**
 * What reaches the desktop's server, exactly: a body on any method (Ollama's own `DELETE
 * /api/delete` carries one), only paths inside the desktop's root and its `--target` base path,
 * and only final answers back (a 1xx is passed over or refused, never left hanging).
 */
import http from 'node:http';
import { Ollama } from 'ollama';
import { startLayout, type Layout } from './helpers/layout';
import { TRANSPORTS } from './helpers/matrix';

interface RawAnswer {
  status: number;
  body: string;
}

/** A request as a plain HTTP client sends it: any method with a body, the path byte for byte. */
function rawRequest(
  url: string,
  options: { method: string; path: string; token: string; body?: string[]; chunked?: boolean },
): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const body = options.body ?? [];
  const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${options.token}`, 'content-type': 'application/json' };
  if (options.chunked) headers['transfer-encoding'] = 'chunked';
  else if (body.length > 0) headers['content-length'] = Buffer.byteLength(body.join(''));
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, method: options.method, path: options.path, headers, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    const write = async () => {
      for (const piece of body) {
        req.write(piece);
        // Separate writes, so a chunked body really arrives in chunks.
        await new Promise((r) => setTimeout(r, 10));
      }
      req.end();
    };
    void write();
  });
}

// One relay for the whole file (starting one takes a while on a busy machine); a user per transport.
let layout: Layout;
beforeAll(async () => {
  layout = await startLayout({ driver: 'process', env: { REQUEST_TIMEOUT_MS: '20000' } });
}, 180_000);
afterAll(() => layout?.close());

describe.each(TRANSPORTS)('what reaches the desktop (transport %s)', (transport) => {
  const user = `dora-${transport}`;
  const tunnelPath = (path: string) => `/api/tunnel/${user}${path}`;
  const send = (options: { method: string; path: string; body?: string[]; chunked?: boolean }) =>
    rawRequest(layout.relay.url, { ...options, path: tunnelPath(options.path), token: layout.token(user) });
  const receivedAt = (path: string) => layout.llm.received.filter((r) => r.path === path);

  beforeAll(async () => {
    await layout.connectBridge(user, { transport });
  }, 60_000);

  it('ollama rm works through the relay: the DELETE /api/delete JSON body reaches the desktop', async () => {
    const ollama = new Ollama({ host: layout.tunnelUrl(user), headers: { authorization: `Bearer ${layout.token(user)}` } });
    await expect(ollama.delete({ model: 'old-model:7b' })).resolves.toEqual({ status: 'success' });
    const deleted = receivedAt('/api/delete').at(-1)!;
    expect(deleted.method).toBe('DELETE');
    expect(JSON.parse(deleted.body)).toEqual({ name: 'old-model:7b' });
    expect(deleted.headers['content-length']).toBe(String(Buffer.byteLength(deleted.body)));
  });

  it.each([
    ['GET', false],
    ['GET', true],
    ['DELETE', true],
    ['OPTIONS', false],
    ['OPTIONS', true],
  ])('a %s body (chunked: %s) arrives intact and framed as the caller sent it', async (method, chunked) => {
    const path = `/request?case=${transport}-${method}-${chunked}`;
    const pieces = ['{"model":', '"llama3",', '"prompt":"héllo"}'];
    const answer = await send({ method, path, body: pieces, chunked });
    expect(answer.status).toBe(200);
    const [arrived] = receivedAt(path);
    expect(arrived.method).toBe(method);
    expect(arrived.body).toBe(pieces.join(''));
    if (chunked) {
      expect(arrived.headers['transfer-encoding']).toBe('chunked');
    } else {
      expect(arrived.headers['content-length']).toBe(String(Buffer.byteLength(pieces.join(''))));
    }
  });

  it.each(['/..', '/../etc/passwd', '/api/../../x', '/%2e%2e/x', '/%2E%2e/x', '/a/%2F..%2F..%2Fx', '/%2e./x', '/..%5Cx', '/a\\..\\..\\x'])(
    'refuses a path that climbs above the desktop root (%s) with 400 bad_path',
    async (path) => {
      const seenBefore = layout.llm.seen.length;
      const answer = await send({ method: 'GET', path });
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body).error.code).toBe('bad_path');
      expect(layout.llm.seen.length).toBe(seenBefore);
    },
  );

  it('passes a 103 Early Hints over and delivers the final 200 answer', async () => {
    const res = await layout.fetchAs(user, '/early-hints');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ final: true });
  });

  it.each(['/switch', '/switch?bare=1'])('answers a target that switches protocols (%s) with a prompt 502 target_failed', async (path) => {
    const began = Date.now();
    const res = await layout.fetchAs(user, path);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('target_failed');
    // Not by the silence timeout (20 s): the switch is refused the moment it arrives.
    expect(Date.now() - began).toBeLessThan(10_000);
  });
});

describe.each(TRANSPORTS)('a bridge with a --target base path (transport %s)', (transport) => {
  const user = `erin-${transport}`;

  beforeAll(async () => {
    await layout.connectBridge(user, { transport, target: `${layout.llm.url}/v1` });
  }, 60_000);

  it('never requests anything outside /v1, whatever path the caller tries', async () => {
    const attempts = ['/chat/completions', '/../api/tags', '/%2e%2e/api/tags', '/x/%2F..%2F..%2Fapi/tags', '/%2e./api/tags', '/a/../models'];
    const seenBefore = layout.llm.seen.length;
    const statuses: number[] = [];
    for (const path of attempts) {
      const answer = await rawRequest(layout.relay.url, { method: 'GET', path: `/api/tunnel/${user}${path}`, token: layout.token(user) });
      statuses.push(answer.status);
    }
    expect(statuses).toEqual([404, 400, 400, 400, 400, 404]);
    // As the server resolved them (`/v1/a/../models` is `/v1/models`): inside /v1, every one.
    expect(layout.llm.seen.slice(seenBefore).map((s) => s.path)).toEqual(['/v1/chat/completions', '/v1/models']);
  });
});
