/**
 * Scenario 1, small requests: 1 KiB in, 1 KiB out (`POST /echo/whole`, answered with a content-length), the shape of most API calls
 * that are not generations (tags, show, embeddings of a sentence).
 *
 * Latency: requests one at a time on one warm keep-alive connection. Throughput: 32 connections
 * each sending its next request as soon as the last one ended. Routes take turns in rounds, so
 * that noise from this shared machine falls on all of them alike.
 *
 * Spaced: the same request, one every `spacingMs` with the routes taking turns, so each route's
 * processes sit idle between its requests, as one user's bridge and proxy do between that user's
 * calls. The code is as warm as the rounds before left it; the processes are not awake.
 */
import { allRoutes, type BenchContext, type Row, type Scenario } from '../context';
import { agentFor, closedLoop, sequential, type RequestSpec, type Route } from '../http-client';
import { distribution, ratio, round, sleep } from '../measure';
import { cpuSeconds } from '../procs';

/** 1 KiB of JSON, the shape of an API call (`/api/show`, a short `/api/embed`). */
export const SMALL_BODY = jsonBody(1024);
const spec = (): RequestSpec => ({ method: 'POST', path: '/echo/whole', body: SMALL_BODY, headers: { 'content-type': 'application/json' }, timeoutMs: 10_000 });

/** A JSON document of exactly `bytes` bytes. */
export function jsonBody(bytes: number): Buffer {
  const head = '{"model":"test-model","prompt":"';
  const tail = '"}';
  return Buffer.from(head + 'x'.repeat(bytes - head.length - tail.length) + tail);
}

export const small: Scenario = {
  id: 'small',
  title: '1. Small requests (1 KiB in, 1 KiB out)',
  async run(ctx: BenchContext) {
    const { latencyRequests, rounds, warmup, throughputMs, connections, spaced, spacingMs } = ctx.sizes.small;
    const routes = allRoutes(ctx);
    const agents = new Map(routes.map((route) => [route.id, agentFor(1)]));
    const latency = new Map<string, { samples: number[]; errors: number; firstError?: string }>(routes.map((route) => [route.id, { samples: [], errors: 0 }]));
    const load = new Map<string, LoadTotals>(routes.map((route) => [route.id, { completed: 0, errors: 0, seconds: 0, latencies: [], cpu: {} }]));
    // CPU per request, by process: our relay's processes and the test server behind every route.
    const watched = (route: Route): Record<string, number> => ({ ...(route.pids?.() ?? {}), 'test server': ctx.llm.proc.pid });

    for (const route of routes) await sequential(route, agents.get(route.id)!, spec, warmup, 1024);
    for (let round = 0; round < rounds; round++) {
      for (const route of rotate(routes, round)) {
        ctx.log(`small: latency round ${round + 1}/${rounds} via ${route.id}`);
        const result = await sequential(route, agents.get(route.id)!, spec, Math.ceil(latencyRequests / rounds), 1024);
        const total = latency.get(route.id)!;
        total.samples.push(...result.samples);
        total.errors += result.errors;
        total.firstError ??= result.firstError;
      }
    }
    const spacedSamples = new Map<string, number[]>(routes.map((route) => [route.id, []]));
    ctx.log(`small: ${spaced} spaced requests per route, one every ${spacingMs} ms`);
    for (let i = 0; i < spaced; i++) {
      for (const route of rotate(routes, i)) {
        await sleep(spacingMs);
        const result = await sequential(route, agents.get(route.id)!, spec, 1, 1024);
        spacedSamples.get(route.id)!.push(...result.samples);
        const total = latency.get(route.id)!;
        total.errors += result.errors;
        total.firstError ??= result.firstError;
      }
    }
    for (const agent of agents.values()) agent.destroy();

    for (let round = 0; round < rounds; round++) {
      for (const route of rotate(routes, round)) {
        ctx.log(`small: throughput round ${round + 1}/${rounds} via ${route.id}`);
        const pids = watched(route);
        const cpuBefore = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
        const result = await closedLoop(route, spec, { connections, durationMs: throughputMs / rounds, warmupMs: 300, expectBytes: 1024 });
        const total = load.get(route.id)!;
        // The warm-up's requests are included in the CPU time, so divide by all requests answered.
        const answered = result.completed + result.errors + Math.round((result.completed / result.seconds) * 0.3);
        for (const [name, pid] of Object.entries(pids)) {
          const used = cpuSeconds(pid) - cpuBefore[name];
          const entry = (total.cpu[name] ??= { seconds: 0, requests: 0 });
          entry.seconds += used;
          entry.requests += answered;
        }
        total.completed += result.completed;
        total.errors += result.errors;
        total.seconds += result.seconds;
        total.latencies.push(...result.latencies);
        total.firstError ??= result.firstError;
      }
    }

    const direct = summarise(ctx.direct, latency, load);
    const directSpaced = distribution(spacedSamples.get(ctx.direct.id)!).p50;
    const rows: Row[] = routes.map((route) => {
      const s = summarise(route, latency, load);
      const spacedP50 = distribution(spacedSamples.get(route.id)!).p50;
      return {
        route: route.id,
        'p50 ms': s.p50,
        'p99 ms': s.p99,
        'added p50 ms': round(s.p50 - direct.p50),
        'added p99 ms': round(s.p99 - direct.p99),
        'p50 ratio': ratio(s.p50, direct.p50),
        'spaced p50 ms': spacedP50,
        'spaced added p50 ms': round(spacedP50 - directSpaced),
        'req/s (32 conns)': Math.round(s.rps),
        'req/s ratio': ratio(s.rps, direct.rps),
        'p99 under load ms': s.loadP99,
        'CPU µs/request': cpuText(load.get(route.id)!.cpu, route.kind === 'peer'),
        errors: s.errors,
        'first error': s.firstError ?? null,
      };
    });
    return {
      status: 'ok' as const,
      columns: ['route', 'p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', 'p50 ratio', 'spaced p50 ms', 'spaced added p50 ms', 'req/s (32 conns)', 'req/s ratio', 'p99 under load ms', 'CPU µs/request', 'errors'],
      rows,
      notes: [
        `Latency: ${latencyRequests} sequential requests per route on one keep-alive connection, after ${warmup} warm-up requests, in ${rounds} interleaved rounds.`,
        `Throughput: ${connections} connections, closed loop, ${throughputMs / 1000} s per route in ${rounds} interleaved rounds (0.3 s warm-up each, not counted).`,
        `Spaced: ${spaced} more requests per route on the same connection, one every ${spacingMs} ms with the routes taking turns (each route idle about ${(spacingMs * routes.length) / 1000} s between its requests), after the latency rounds.`,
        '"added" is the route\'s percentile minus the direct call\'s percentile in the same run; "ratio" divides them.',
        'CPU µs/request: CPU time (user + system, from /proc/<pid>/stat) each process used during the throughput runs, divided by the requests answered. With 2 cores, the sum over the processes bounds the requests per second (about 2,000,000 / sum, less the load generator\'s own share). Peers: only the test server is ours to read.',
      ],
    };
  },
};

interface LoadTotals {
  completed: number;
  errors: number;
  seconds: number;
  latencies: number[];
  firstError?: string;
  cpu: Record<string, { seconds: number; requests: number }>;
}

function cpuText(cpu: LoadTotals['cpu'], peer: boolean): string {
  return Object.entries(cpu)
    .filter(([name]) => !peer || name === 'test server')
    .map(([name, c]) => `${name} ${c.requests > 0 ? Math.round((c.seconds / c.requests) * 1e6) : '?'}`)
    .join(', ');
}

function summarise(route: Route, latency: Map<string, { samples: number[]; errors: number; firstError?: string }>, load: Map<string, LoadTotals>) {
  const l = latency.get(route.id)!;
  const t = load.get(route.id)!;
  const d = distribution(l.samples);
  return {
    p50: d.p50,
    p99: d.p99,
    rps: t.seconds > 0 ? t.completed / t.seconds : Number.NaN,
    loadP99: distribution(t.latencies).p99,
    errors: l.errors + t.errors,
    firstError: l.firstError ?? t.firstError,
  };
}

/** The routes in a different order each round, so none always runs first. */
export function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % Math.max(1, items.length);
  return [...items.slice(k), ...items.slice(0, k)];
}
