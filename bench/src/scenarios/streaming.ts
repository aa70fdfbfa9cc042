/**
 * Scenario 2, streaming: the test server answers `POST /api/chat` with NDJSON tokens 5 ms apart,
 * each line stamped with the moment it was written (`written_ns`, the machine's monotonic clock,
 * the same in every process). The web client stamps each line's arrival on the same clock, so a
 * token's delivery delay is exact: arrival minus write, across every hop. Time to first token is
 * from the request leaving the client to the first token line arriving.
 */
import { allRoutes, type BenchContext, type Row, type Scenario } from '../context';
import { agentFor, send, type Route } from '../http-client';
import { distribution, ratio, round } from '../measure';
import { rotate } from './small';

interface StreamFigures {
  delays: number[];
  /** The first token's delay alone: held at the start of an answer, or slow on the request's way? */
  firstDelays: number[];
  ttft: number[];
  tokens: number;
  expected: number;
  errors: number;
  firstError?: string;
}

export const streaming: Scenario = {
  id: 'streaming',
  title: '2. Streaming tokens (NDJSON, 5 ms apart)',
  async run(ctx: BenchContext) {
    const { streams, tokens, delayMs } = ctx.sizes.streaming;
    const routes = allRoutes(ctx);
    const figures = new Map<string, StreamFigures>(routes.map((route) => [route.id, { delays: [], firstDelays: [], ttft: [], tokens: 0, expected: 0, errors: 0 }]));
    for (let round = 0; round < streams; round++) {
      for (const route of rotate(routes, round)) {
        ctx.log(`streaming: stream ${round + 1}/${streams} via ${route.id}`);
        await oneStream(route, tokens, delayMs, figures.get(route.id)!);
      }
    }
    const direct = figures.get(ctx.direct.id)!;
    const directDelay = distribution(direct.delays);
    const directTtft = distribution(direct.ttft);
    const rows: Row[] = routes.map((route) => {
      const f = figures.get(route.id)!;
      const delay = distribution(f.delays);
      const ttft = distribution(f.ttft);
      return {
        route: route.id,
        'token delay p50 ms': delay.p50,
        'token delay p99 ms': delay.p99,
        'token delay max ms': delay.max,
        'added p99 ms': round(delay.p99 - directDelay.p99),
        'p99 ratio': ratio(delay.p99, directDelay.p99),
        'first token p50 ms': ttft.p50,
        'first token added ms': round(ttft.p50 - directTtft.p50),
        'first token delay p50 ms': distribution(f.firstDelays).p50,
        'tokens received': `${f.tokens}/${f.expected}`,
        errors: f.errors,
        'first error': f.firstError ?? null,
      };
    });
    return {
      status: 'ok' as const,
      columns: ['route', 'token delay p50 ms', 'token delay p99 ms', 'token delay max ms', 'added p99 ms', 'p99 ratio', 'first token p50 ms', 'first token added ms', 'first token delay p50 ms', 'tokens received', 'errors'],
      rows,
      notes: [
        `${streams} stream(s) of ${tokens} tokens ${delayMs} ms apart per route, routes taking turns.`,
        'Delay per token = arrival at the web client minus the moment the test server wrote it (both on CLOCK_MONOTONIC). The direct row is the floor: loopback plus the client\'s own event loop.',
        'First token delay is that delay for the first token alone; first token p50 minus it is the request\'s way to the model. Each route serves only these few requests, so its per-request code runs cold here (see `node bench/run.mjs --hops --chat` for the same path warm).',
      ],
    };
  },
};

async function oneStream(route: Route, tokens: number, delayMs: number, into: StreamFigures): Promise<void> {
  const agent = agentFor(1);
  let pending = '';
  let first = Number.NaN;
  let count = 0;
  into.expected += tokens;
  const body = Buffer.from(JSON.stringify({ model: 'test-model', stream: true, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: tokens } }));
  const outcome = await send(route, agent, {
    method: 'POST',
    path: `/api/chat?delayMs=${delayMs}&stamp=1`,
    body,
    headers: { 'content-type': 'application/json' },
    timeoutMs: 30_000 + tokens * delayMs * 4,
    onChunk: (chunk, atMs) => {
      pending += chunk.toString('utf8');
      let newline = pending.indexOf('\n');
      while (newline !== -1) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
        const match = /"written_ns":"(\d+)"/.exec(line);
        if (!match) continue;
        const delay = atMs - Number(BigInt(match[1])) / 1e6;
        if (Number.isNaN(first)) {
          first = atMs;
          into.firstDelays.push(delay);
        }
        into.delays.push(delay);
        count += 1;
      }
    },
  });
  agent.destroy();
  into.tokens += count;
  if (outcome.status !== 200 || outcome.error || count !== tokens) {
    into.errors += 1;
    into.firstError ??= outcome.error ?? `status ${outcome.status}, ${count}/${tokens} tokens`;
  }
  if (!Number.isNaN(first)) into.ttft.push(first - outcome.startMs);
}
