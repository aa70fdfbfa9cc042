/**
 * The proxy's link handlers under random and mutated input, over real sockets to a real proxy
 * server in this process: WebSocket frames, poll heartbeats and answer bodies. Whatever arrives,
 * the proxy answers or closes the link with a protocol close code, never throws, and accepts no
 * more of a stream's answer than a window plus one frame past the credit it gave back.
 */
import http from 'node:http';
import { finished } from 'node:stream/promises';
import fc from 'fast-check';
import { encodeControl, INITIAL_WINDOW, MAX_OVERSHOOT_BYTES, PROXY_SECRET_HEADER, type ControlMessage } from '@ctll/protocol';
import { binaryFrameArb, controlArb, FUZZ_SOCKET_RUNS, mutate, streamIdArb, textFrameArb } from '../../tests/helpers/fuzz';
import { callRelay, connectDesktop, SECRET, startProxy, type TestProxy } from './helpers/proxy';

let proxy: TestProxy;
beforeAll(async () => {
  proxy = await startProxy({ REQUEST_TIMEOUT_MS: '5000', BRIDGE_POLL_TIMEOUT_MS: '200' });
});
afterAll(() => proxy.close());

// Many cases, each over real sockets: the time grows with CTLL_FUZZ_RUNS.
jest.setTimeout(30_000 + FUZZ_SOCKET_RUNS * 500);

/** What a WebSocket peer may see when the proxy gives up on it: policy (1008), bad UTF-8 (1007), too big (1009), protocol (1002). */
const PROTOCOL_CLOSE_CODES = [1002, 1007, 1008, 1009];

async function proxyAnswers(): Promise<number> {
  const res = await fetch(`${proxy.url}/status`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
  await res.arrayBuffer();
  return res.status;
}

it('a WebSocket desktop sending any sequence of frames gets answers or a protocol close, and never gets past its credit', async () => {
  const frameArb = (id: string) => {
    const ids = streamIdArb([id]);
    return fc.oneof(
      { weight: 3, arbitrary: textFrameArb(ids).map((text) => ({ text })) },
      { weight: 3, arbitrary: binaryFrameArb(ids).map((binary) => ({ binary })) },
      { weight: 1, arbitrary: controlArb(fc.constant(id)).map((message) => ({ text: encodeControl(message) })) },
    );
  };
  await fc.assert(
    fc.asyncProperty(fc.array(fc.nat(), { minLength: 1, maxLength: 24 }), fc.integer(), async (picks, seed) => {
      const desktop = await connectDesktop(proxy);
      let granted = 0;
      let closedWith: number | undefined;
      desktop.ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const message = JSON.parse(data.toString()) as ControlMessage;
        if (message.type === 'window') granted += message.bytes;
      });
      desktop.ws.on('close', (code) => (closedWith = code));
      const before = proxy.stats.bytesFromDesktop;
      // An answer (maybe an error), or a stream cut after its head: both are fine here.
      const caller = callRelay(proxy, '/fuzz').catch(() => undefined);
      const request = (await desktop.next()) as { id: string };
      const frames = fc.sample(fc.array(frameArb(request.id), { minLength: picks.length, maxLength: picks.length }), { numRuns: 1, seed })[0];
      for (const frame of frames) {
        if (desktop.ws.readyState !== desktop.ws.OPEN) break;
        if ('text' in frame) desktop.ws.send(frame.text);
        else desktop.ws.send(frame.binary, { binary: true });
      }
      // A round trip: everything sent has been handled once the ping is answered (or the proxy closed the link).
      await new Promise<void>((resolve) => {
        if (desktop.ws.readyState !== desktop.ws.OPEN) return resolve();
        const timer = setInterval(() => {
          if (desktop.ws.readyState === desktop.ws.OPEN) return;
          clearInterval(timer);
          resolve();
        }, 5);
        desktop.ws.once('pong', () => {
          clearInterval(timer);
          resolve();
        });
        desktop.ws.ping();
      });
      expect(proxy.stats.bytesFromDesktop - before - granted).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_OVERSHOOT_BYTES);
      desktop.ws.terminate();
      // The caller hears of the end of the tunnel at once.
      const res = await caller;
      if (res) {
        res.resume();
        // finished(), not a 'close' listener: the answer may have been cut while the frames were
        // still being sent, and a listener added after that would wait for ever.
        await finished(res).catch(() => undefined);
      }
      await new Promise((resolve) => setImmediate(resolve));
      if (closedWith !== undefined && closedWith !== 1006) expect(PROTOCOL_CLOSE_CODES).toContain(closedWith);
      expect(await proxyAnswers()).toBe(200);
    }),
    { numRuns: FUZZ_SOCKET_RUNS },
  );
  expect(proxy.hub.info()).toHaveLength(0);
});

it('a polling desktop sending any heartbeat or answer body gets a 2xx or 4xx, never a failure of the proxy', async () => {
  const register = await fetch(`${proxy.url}/bridge/register`, { method: 'POST', headers: { [PROXY_SECRET_HEADER]: SECRET }, body: '{}' });
  const { bridgeId } = (await register.json()) as { bridgeId: string };
  const post = (path: string, body: Buffer) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request(`${proxy.url}${path}`, { method: 'POST', headers: { [PROXY_SECRET_HEADER]: SECRET, 'content-length': body.byteLength } });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
  const heartbeatArb = fc.oneof(
    fc.array(controlArb(streamIdArb()), { maxLength: 8 }).map((messages) => Buffer.from(JSON.stringify({ messages }))),
    fc.array(fc.jsonValue(), { maxLength: 8 }).map((messages) => Buffer.from(JSON.stringify({ messages }))),
    fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)),
  );
  const head = Buffer.from(JSON.stringify({ status: 200, headers: {} }));
  const answerArb = fc.oneof(mutate(Buffer.concat([Buffer.from([0, 0, 0, head.byteLength]), head, Buffer.from('body')])), fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)));
  await fc.assert(
    fc.asyncProperty(heartbeatArb, answerArb, fc.boolean(), async (heartbeat, answer, withRequest) => {
      const caller = withRequest ? callRelay(proxy, '/poll-fuzz') : undefined;
      caller?.catch(() => undefined);
      let requestId = 'p0.0';
      if (withRequest) {
        const res = await fetch(`${proxy.url}/bridge/poll/${bridgeId}`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
        const batch = Buffer.from(await res.arrayBuffer());
        const match = /"id":"([^"]+)"/.exec(batch.toString('latin1'));
        if (match) requestId = match[1];
      }
      const heartbeatStatus = await post(`/bridge/heartbeat/${bridgeId}`, heartbeat);
      expect([200, 400, 413]).toContain(heartbeatStatus);
      const answerStatus = await post(`/bridge/respond/${bridgeId}/${requestId}`, answer);
      expect(answerStatus).toBeGreaterThanOrEqual(200);
      expect(answerStatus).toBeLessThan(500);
      // Unanswered callers time out on their own; they are not what this property is about.
      void caller?.then((res) => res.resume(), () => undefined);
    }),
    { numRuns: FUZZ_SOCKET_RUNS },
  );
  expect(await proxyAnswers()).toBe(200);
});
