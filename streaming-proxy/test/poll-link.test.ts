/**
 * The proxy's end of a polling bridge (tunnel/poll-link.ts): requests wait in a bounded queue for
 * the bridge's next poll, answers come back as POSTs. What a caller sees when the bridge is slow,
 * gone, or sends a broken answer. A real proxy server in this process; the bridge's polls and
 * answers are plain HTTP requests made by hand.
 */
import http from 'node:http';
import {
  decodeFrame,
  encodeResponseHead,
  PROXY_SECRET_HEADER,
  RecordReader,
  type ControlMessage,
} from '@ctll/protocol';
import { callRelay, registerPoller, SECRET, startProxy, type TestProxy } from './helpers/proxy';
import { waitUntil, within } from './helpers/wait';

let proxy: TestProxy | undefined;
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

async function start(env: Record<string, string> = {}): Promise<TestProxy> {
  proxy = await startProxy({ BRIDGE_POLL_TIMEOUT_MS: '300', BRIDGE_GRACE_MS: '30000', ...env });
  return proxy;
}

/** One poll; its status and the control messages it carried. */
async function poll(p: TestProxy, bridgeId: string): Promise<{ status: number; messages: ControlMessage[] }> {
  const res = await fetch(`${p.url}/bridge/poll/${bridgeId}`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
  const records = new RecordReader().push(Buffer.from(await res.arrayBuffer()));
  if (!records.ok) throw new Error(records.error);
  const messages: ControlMessage[] = [];
  for (const record of records.value) {
    const frame = decodeFrame(record);
    if (frame.ok && frame.value.kind === 'control') messages.push(frame.value.message);
  }
  return { status: res.status, messages };
}

async function pollRequest(p: TestProxy, bridgeId: string): Promise<Extract<ControlMessage, { type: 'http_request' }>> {
  const { messages } = await poll(p, bridgeId);
  const request = messages.find((message) => message.type === 'http_request');
  if (!request || request.type !== 'http_request') throw new Error(`expected a request, got ${JSON.stringify(messages)}`);
  return request;
}

function respond(p: TestProxy, bridgeId: string, requestId: string, body: Buffer): Promise<{ status: number; json: unknown }> {
  return fetch(`${p.url}/bridge/respond/${bridgeId}/${requestId}`, {
    method: 'POST',
    headers: { [PROXY_SECRET_HEADER]: SECRET },
    body,
  }).then(async (res) => ({ status: res.status, json: await res.json() }));
}

function readJson(res: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
    res.on('error', reject);
  });
}

it('answers an idle poll empty (204) at the poll timeout, and the bridge stays registered', async () => {
  const p = await start();
  const bridgeId = await registerPoller(p);
  // 300 ms of poll timeout; an answer that has not come in 5 s is not coming at the poll timeout.
  expect(await within(poll(p, bridgeId), 5000, 'still waiting')).toEqual({ status: 204, messages: [] });
  expect(p.hub.find(bridgeId)?.closed).toBe(false);
});

it('hands a waiting poll the request the moment it arrives, and the answer POST reaches the caller', async () => {
  const p = await start({ BRIDGE_POLL_TIMEOUT_MS: '20000' });
  const bridgeId = await registerPoller(p);
  const polled = pollRequest(p, bridgeId);
  await waitUntil(() => p.hub.find(bridgeId) !== undefined, 'registered');
  const caller = callRelay(p, '/v1/models');
  const request = await polled;
  expect(request).toMatchObject({ method: 'GET', path: '/v1/models' });
  const answer = await respond(p, bridgeId, request.id, Buffer.concat([encodeResponseHead({ status: 200, headers: { 'content-type': 'text/plain' } }), Buffer.from('the models')]));
  expect(answer).toEqual({ status: 200, json: { ok: true } });
  const res = await caller;
  expect(res.statusCode).toBe(200);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  expect(Buffer.concat(chunks).toString()).toBe('the models');
});

it('fails requests waiting for a bridge that stopped polling with 503 desktop_disconnected once its grace is over, and forgets the bridge', async () => {
  const p = await start({ BRIDGE_GRACE_MS: '400', REQUEST_TIMEOUT_MS: '30000' });
  const bridgeId = await registerPoller(p);
  const res = await callRelay(p, '/never-polled');
  expect(res.statusCode).toBe(503);
  expect(await readJson(res)).toMatchObject({ error: { code: 'desktop_disconnected' } });
  const again = await fetch(`${p.url}/bridge/poll/${bridgeId}`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
  expect(again.status).toBe(404);
  expect(await again.json()).toMatchObject({ error: { code: 'unknown_bridge' } });
});

it('refuses a request with 503 queue_full while the bridge has its whole queue still to collect', async () => {
  const p = await start({ BRIDGE_MAX_QUEUE: '2' });
  await registerPoller(p);
  const queued = [callRelay(p, '/a'), callRelay(p, '/b')];
  for (const one of queued) one.catch(() => undefined);
  await waitUntil(() => p.stats.activeExchanges === 2, 'two requests are queued');
  const res = await callRelay(p, '/c');
  expect(res.statusCode).toBe(503);
  expect(await readJson(res)).toMatchObject({ error: { code: 'queue_full' } });
});

it('withdraws a request whose caller left before any poll took it: the bridge never hears of it, and its queue slot is free again', async () => {
  const p = await start({ BRIDGE_MAX_QUEUE: '1' });
  const bridgeId = await registerPoller(p);
  const req = http.request(`${p.relayUrl}/abandoned`);
  req.on('error', () => undefined);
  req.end();
  await waitUntil(() => p.stats.activeExchanges === 1, 'the request is queued');
  req.destroy();
  await waitUntil(() => p.stats.activeExchanges === 0, 'the exchange is over');
  expect(await poll(p, bridgeId)).toEqual({ status: 204, messages: [] });
  const next = callRelay(p, '/next');
  const request = await pollRequest(p, bridgeId);
  expect(request.path).toBe('/next');
  await respond(p, bridgeId, request.id, encodeResponseHead({ status: 204, headers: {} }));
  expect((await next).statusCode).toBe(204);
});

it('answers an answer POST with a malformed head 400 malformed_answer, and the caller gets 502 bad_message', async () => {
  const p = await start();
  const bridgeId = await registerPoller(p);
  const caller = callRelay(p, '/broken');
  const request = await pollRequest(p, bridgeId);
  const bad = Buffer.from('{"status":"two hundred"}');
  const header = Buffer.alloc(4);
  header.writeUInt32BE(bad.byteLength);
  const answer = await respond(p, bridgeId, request.id, Buffer.concat([header, bad]));
  expect(answer.status).toBe(400);
  expect(answer.json).toMatchObject({ error: { code: 'malformed_answer' } });
  const res = await caller;
  expect(res.statusCode).toBe(502);
  expect(await readJson(res)).toMatchObject({ error: { code: 'bad_message' } });
});

it('treats an answer POST that ends before its head as malformed, and the caller still gets an answer', async () => {
  const p = await start();
  const bridgeId = await registerPoller(p);
  const caller = callRelay(p, '/cut');
  const request = await pollRequest(p, bridgeId);
  const answer = await respond(p, bridgeId, request.id, Buffer.from([0, 0]));
  expect(answer.status).toBe(400);
  expect(answer.json).toMatchObject({ error: { code: 'malformed_answer' } });
  expect((await caller).statusCode).toBe(502);
});

it("passes a bridge's error head on to the caller with the catalogue's status for its code", async () => {
  const p = await start();
  const bridgeId = await registerPoller(p);
  const caller = callRelay(p, '/down');
  const request = await pollRequest(p, bridgeId);
  const answer = await respond(p, bridgeId, request.id, encodeResponseHead({ error: { code: 'target_unreachable', message: 'connection refused' } }));
  expect(answer.status).toBe(200);
  const res = await caller;
  expect(res.statusCode).toBe(502);
  expect(await readJson(res)).toMatchObject({ error: { code: 'target_unreachable', message: 'connection refused' } });
});

it('answers an answer POST for a request it does not know 404 unknown_request', async () => {
  const p = await start();
  const bridgeId = await registerPoller(p);
  const answer = await respond(p, bridgeId, `${bridgeId}.zz`, encodeResponseHead({ status: 200, headers: {} }));
  expect(answer.status).toBe(404);
  expect(answer.json).toMatchObject({ error: { code: 'unknown_request' } });
});

it("cuts the caller's answer (no clean end) when the bridge drops its answer POST half way", async () => {
  const p = await start();
  const bridgeId = await registerPoller(p);
  const caller = callRelay(p, '/dropped');
  const request = await pollRequest(p, bridgeId);
  const post = http.request(`${p.url}/bridge/respond/${bridgeId}/${request.id}`, { method: 'POST', headers: { [PROXY_SECRET_HEADER]: SECRET } });
  post.on('error', () => undefined);
  post.write(encodeResponseHead({ status: 200, headers: {} }));
  post.write(Buffer.from('partial'));
  const res = await caller;
  expect(res.statusCode).toBe(200);
  const outcome = new Promise<string>((resolve) => {
    res.on('end', () => resolve('ended'));
    res.on('error', () => resolve('aborted'));
    res.on('aborted', () => resolve('aborted'));
  });
  res.resume();
  post.destroy();
  expect(await within(outcome, 5000, 'still streaming')).toBe('aborted');
  await waitUntil(() => p.stats.activeExchanges === 0, 'the exchange is over');
});
