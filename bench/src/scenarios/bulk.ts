/**
 * Scenario 3, bulk: a 100 MiB answer (`GET /blob`, a model file or a big embedding batch coming
 * back) and a 100 MiB request body (`POST /discard`, an upload), each through every route. The
 * test server produces and swallows bytes at memory speed, so the figure is the route's.
 *
 * While our relay carries the transfer, the bench samples VmRSS of api-backend, the user's
 * streaming-proxy and the bridge every 20 ms and reads the kernel's peak (VmHWM, reset just
 * before), so "growth" is what that one transfer cost each process at its worst moment.
 */
import { randomBytes } from 'node:crypto';
import { allRoutes, type BenchContext, type Row, type Scenario } from '../context';
import { agentFor, send, type Route } from '../http-client';
import { ratio, round } from '../measure';
import { cpuSeconds, RssSampler } from '../procs';
import { rotate } from './small';

/**
 * Upload bytes are printable ASCII (base64 of random bytes): localtunnel's client, when it
 * rewrites the Host header, decodes the first chunk of each request as UTF-8, which corrupts
 * binary bodies; text keeps the comparison fair. Downloads are binary.
 */
const BLOCK = Buffer.from(randomBytes(48 * 1024).toString('base64'));
const PROCESSES = ['api-backend', 'streaming-proxy', 'bridge'];
const WARMUP_BYTES = 16 * 1024 * 1024;

type Direction = 'download' | 'upload';

interface Transfer {
  seconds: number[];
  errors: number;
  firstError?: string;
  growth: Record<string, number>;
  /** CPU seconds each watched process used over all transfers, by process name. */
  cpu: Record<string, number>;
}

export const bulk: Scenario = {
  id: 'bulk',
  title: '3. Bulk transfer (100 MiB each way)',
  async run(ctx: BenchContext) {
    const { bytes, repetitions } = ctx.sizes.bulk;
    const routes = allRoutes(ctx);
    const key = (route: Route, direction: Direction) => `${route.id}|${direction}`;
    const figures = new Map<string, Transfer>();
    for (const route of routes) for (const direction of ['download', 'upload'] as Direction[]) figures.set(key(route, direction), { seconds: [], errors: 0, growth: {}, cpu: {} });

    // One small transfer each way per route first, not counted: the relay's code paths for a body
    // that outgrows a window are compiled, and a relay that just started has finished its own
    // start-up work (the embedded audit database's first queries) before the clock runs.
    for (const route of routes) {
      for (const direction of ['download', 'upload'] as Direction[]) {
        await transfer(route, direction, Math.min(WARMUP_BYTES, bytes), {}, { seconds: [], errors: 0, growth: {}, cpu: {} });
      }
    }
    for (let rep = 0; rep < repetitions; rep++) {
      for (const route of rotate(routes, rep)) {
        for (const direction of ['download', 'upload'] as Direction[]) {
          ctx.log(`bulk: ${direction} ${rep + 1}/${repetitions} via ${route.id}`);
          await transfer(route, direction, bytes, { ...(route.pids?.() ?? {}), 'test server': ctx.llm.proc.pid }, figures.get(key(route, direction))!);
        }
      }
    }

    const mib = bytes / (1024 * 1024);
    const rows: Row[] = [];
    for (const direction of ['download', 'upload'] as Direction[]) {
      const directRate = rate(figures.get(key(ctx.direct, direction))!, mib);
      for (const route of routes) {
        const f = figures.get(key(route, direction))!;
        const mibPerS = rate(f, mib);
        const row: Row = {
          route: route.id,
          direction,
          'MiB/s': round(mibPerS, 1),
          'ratio to direct': ratio(mibPerS, directRate),
        };
        for (const name of PROCESSES) row[`${name} RSS growth MiB`] = route.pids ? (f.growth[name] ?? null) : null;
        row['CPU ms/MiB'] = cpuText(f, mib, route.pids === undefined);
        row.errors = f.errors;
        row['first error'] = f.firstError ?? null;
        rows.push(row);
      }
    }
    return {
      status: 'ok' as const,
      columns: ['route', 'direction', 'MiB/s', 'ratio to direct', ...PROCESSES.map((name) => `${name} RSS growth MiB`), 'CPU ms/MiB', 'errors'],
      rows,
      notes: [
        'Uploads are printable ASCII: localtunnel\'s client decodes the first chunk of each request as UTF-8 while rewriting the Host header, so a binary body arrives corrupted (our relay and ssh carry any bytes; the relay\'s binary safety is covered by the end-to-end tests).',
        `${mib} MiB per transfer, ${repetitions} transfer(s) per route and direction (routes taking turns) after one ${Math.min(WARMUP_BYTES, bytes) / (1024 * 1024)} MiB transfer each way per route that is not counted; MiB/s is the mean over them.`,
        'CPU ms/MiB: CPU time (user + system, from /proc/<pid>/stat) each process used over the route\'s transfers in that direction, divided by the MiB carried: the relay\'s processes and the test server (for peers only the test server is ours to read). With 2 cores, 2,000 divided by the sum over every process on the path (the bench\'s own client included) bounds the MiB/s.',
        'RSS growth: peak VmRSS during the transfer (sampled every 20 ms, and the kernel\'s VmHWM after a reset) minus VmRSS just before it; the largest over the repetitions. Relay rows only: the peers\' processes are not ours.',
      ],
    };
  },
};

function rate(f: Transfer, mib: number): number {
  if (f.seconds.length === 0) return Number.NaN;
  return mib / (f.seconds.reduce((a, b) => a + b, 0) / f.seconds.length);
}

function cpuText(f: Transfer, mib: number, peer: boolean): string {
  const transfers = f.seconds.length + f.errors;
  return Object.entries(f.cpu)
    .filter(([name]) => !peer || name === 'test server')
    .map(([name, seconds]) => `${name} ${transfers > 0 ? round((seconds * 1000) / (mib * transfers), 2) : '?'}`)
    .join(', ');
}

async function transfer(route: Route, direction: Direction, bytes: number, watched: Record<string, number>, into: Transfer): Promise<void> {
  const pids = route.pids?.() ?? {};
  const sampler = route.pids ? new RssSampler(pids) : undefined;
  const cpuBefore = Object.fromEntries(Object.entries(watched).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const agent = agentFor(1);
  let body = '';
  const outcome =
    direction === 'download'
      ? await send(route, agent, { method: 'GET', path: `/blob?n=${bytes}`, timeoutMs: 300_000 })
      : await send(route, agent, {
          method: 'POST',
          path: '/discard',
          stream: { block: BLOCK, bytes },
          headers: { 'content-type': 'application/octet-stream' },
          timeoutMs: 300_000,
          onChunk: (chunk) => (body += chunk.toString('utf8')),
        });
  agent.destroy();
  for (const [name, pid] of Object.entries(watched)) into.cpu[name] = (into.cpu[name] ?? 0) + cpuSeconds(pid) - cpuBefore[name];
  const memory = sampler?.stop() ?? {};
  for (const [name, m] of Object.entries(memory)) into.growth[name] = Math.max(into.growth[name] ?? 0, m.growthMb);
  const delivered = direction === 'download' ? outcome.bytes : Number((/"bytes":(\d+)/.exec(body) ?? [])[1] ?? -1);
  if (outcome.status !== 200 || outcome.error || delivered !== bytes) {
    into.errors += 1;
    into.firstError ??= outcome.error ?? `status ${outcome.status}, ${delivered} of ${bytes} bytes`;
    return;
  }
  into.seconds.push((outcome.endMs - outcome.startMs) / 1000);
}
