/**
 * Scenario 5, polling delivery: how long a web request waits before a desktop on the long-poll
 * transport has it. A minimal desktop written against the wire format (protocol/src/poll.ts)
 * registers, parks a poll, and answers each request it gets; the web client sends a request once
 * the poll is parked. Delivery = the moment the poll's answer (the batch holding the
 * `http_request`) arrives minus the moment the web client sent the request, both in this process.
 *
 * The direct counterpart is the same request sent straight to a waiting HTTP server in this
 * process: sent → its request handler runs. It is the floor any delivery sits on.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeFrame, encodeResponseHead, RecordReader } from '@ctll/protocol';
import type { BenchContext, Row, Scenario } from '../context';
import { agentFor, send, type Route } from '../http-client';
import { distribution, nowMs, ratio, round, sleep } from '../measure';

const USER = 'bench-poll-probe';

export const polling: Scenario = {
  id: 'polling',
  title: '5. Polling transport: request queued → at the waiting poll',
  async run(ctx: BenchContext) {
    const { samples } = ctx.sizes.polling;
    const relay = ctx.processRelay;
    const auth = { authorization: `Bearer ${relay.token(USER)}` };
    const api: Route = { id: 'relay api', kind: 'relay', host: '127.0.0.1', port: relay.port, prefix: '', headers: auth };
    const web: Route = { id: 'relay web', kind: 'relay', host: '127.0.0.1', port: relay.port, prefix: `/api/tunnel/${USER}`, headers: auth };
    const pollAgent = agentFor(1);
    const respondAgent = agentFor(1);
    const webAgent = agentFor(1);

    let registration = '';
    const registered = await send(api, respondAgent, {
      method: 'POST',
      path: '/api/bridge/register',
      body: Buffer.from(JSON.stringify({ clientId: 'bench', version: 'bench' })),
      headers: { 'content-type': 'application/json' },
      timeoutMs: 30_000,
      onChunk: (chunk) => (registration += chunk.toString('utf8')),
    });
    if (registered.status !== 201) {
      return { status: 'failed' as const, reason: `register answered ${registered.status}: ${registration.slice(0, 200)}`, columns: [], rows: [], notes: [] };
    }
    const { bridgeId } = JSON.parse(registration) as { bridgeId: string };

    const delays: number[] = [];
    let errors = 0;
    let firstError: string | undefined;
    const warmup = Math.min(10, samples);
    for (let i = 0; i < samples + warmup; i++) {
      const reader = new RecordReader();
      let arrived = Number.NaN;
      let requestId: string | undefined;
      const poll = send(api, pollAgent, {
        method: 'GET',
        path: `/api/bridge/poll/${bridgeId}`,
        timeoutMs: 60_000,
        onChunk: (chunk, atMs) => {
          const records = reader.push(chunk);
          if (!records.ok) return;
          for (const record of records.value) {
            const frame = decodeFrame(record);
            if (frame.ok && frame.value.kind === 'control' && frame.value.message.type === 'http_request') {
              requestId = frame.value.message.id;
              if (Number.isNaN(arrived)) arrived = atMs;
            }
          }
        },
      });
      // Let the poll reach the proxy and park there before anything is queued.
      await sleep(15);
      const sentAt = nowMs();
      const answer = send(web, webAgent, { method: 'GET', path: `/probe?i=${i}`, timeoutMs: 30_000 });
      const polled = await poll;
      if (requestId === undefined) {
        errors += 1;
        firstError ??= polled.error ?? `poll answered ${polled.status} without a request`;
        await answer;
        continue;
      }
      const responded = await send(api, respondAgent, {
        method: 'POST',
        path: `/api/bridge/respond/${bridgeId}/${requestId}`,
        body: Buffer.concat([encodeResponseHead({ status: 200, headers: { 'content-type': 'text/plain' } }), Buffer.from('ok')]),
        timeoutMs: 30_000,
      });
      const received = await answer;
      if (received.status !== 200 || responded.status >= 300) {
        errors += 1;
        firstError ??= `web client got ${received.status}, respond got ${responded.status}`;
        continue;
      }
      if (i >= warmup) delays.push(arrived - sentAt);
    }
    for (const agent of [pollAgent, respondAgent, webAgent]) agent.destroy();

    const direct = await directDelivery(samples);
    const polled = distribution(delays);
    const floor = distribution(direct);
    const rows: Row[] = [
      { route: 'direct (request → waiting server)', 'p50 ms': floor.p50, 'p99 ms': floor.p99, 'p50 ratio': 1, samples: floor.n, errors: 0 },
      { route: 'relay poll/process', 'p50 ms': polled.p50, 'p99 ms': polled.p99, 'p50 ratio': ratio(polled.p50, floor.p50), samples: polled.n, errors, 'first error': firstError ?? null },
    ];
    return {
      status: 'ok' as const,
      columns: ['route', 'p50 ms', 'p99 ms', 'p50 ratio', 'samples', 'errors'],
      rows,
      notes: [
        `${samples} requests (after ${warmup} warm-up), each sent 15 ms after the poll was opened so the poll is waiting at the proxy.`,
        'The relay path is web client → api-backend → proxy queue → the parked poll\'s answer → api-backend → desktop.',
      ],
      summary: { pollP50Ms: polled.p50, pollP99Ms: polled.p99, directP50Ms: floor.p50, addedP50Ms: round(polled.p50 - floor.p50) },
    };
  },
};

async function directDelivery(samples: number[] | number): Promise<number[]> {
  const count = typeof samples === 'number' ? samples : samples.length;
  let arrivedAt = Number.NaN;
  const server = http.createServer((req, res) => {
    arrivedAt = nowMs();
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const route: Route = { id: 'direct', kind: 'direct', host: '127.0.0.1', port: (server.address() as AddressInfo).port, prefix: '', headers: {} };
  const agent = agentFor(1);
  const delays: number[] = [];
  for (let i = 0; i < count + 10; i++) {
    arrivedAt = Number.NaN;
    const sentAt = nowMs();
    await send(route, agent, { method: 'GET', path: `/probe?i=${i}` });
    if (i >= 10) delays.push(arrivedAt - sentAt);
    await sleep(2);
  }
  agent.destroy();
  await new Promise((resolve) => server.close(resolve));
  return delays;
}
