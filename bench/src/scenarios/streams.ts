/**
 * Scenario 8, memory per open stream, in the worst case the protocol's bound is about: web
 * clients that ask for a large download and then stop reading. Each such stream fills the
 * sockets along the way, then its credit window at the proxy, and stalls; nothing more moves
 * until the client reads again. The protocol says a side then holds at most one window plus one
 * frame per stream and direction (INITIAL_WINDOW + MAX_OVERSHOOT_BYTES, protocol/src/flow.ts), and
 * on the WebSocket, where windows grow while the reader keeps up (stream-window.ts), at most
 * WINDOW_GROWTH_BUDGET more over all of the proxy's streams: the sockets behind a caller that
 * stopped reading take bytes for a while, so a stream may grow before it stalls.
 *
 * For each count N and transport: a user of their own (so a fresh streaming-proxy process with
 * nothing else in it) and a real bridge (`node bridge/dist/cli.js`) on the process-driver
 * api-backend; VmRSS of the proxy, api-backend and the bridge read before the streams open and
 * again once the proxy's memory stopped growing; growth divided by N. The three processes also
 * run a garbage-collection hook (children/gc-hook.ts), so the same moments give heap and external
 * memory after a full collection: what the processes really hold, without uncollected garbage. Kernel socket buffers are
 * not in any process's RSS, so bytes waiting in them are not counted (nor should they be: they
 * are bounded by the kernel, not by us).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { BenchContext, Row, Scenario } from '../context';
import { agentFor, type Route } from '../http-client';
import { nowMs, round, sleep, waitUntil } from '../measure';
import { memoryOf } from '../procs';
import { BUILD_DIR, relayRoute, startBridgeProcess, startRelayProcess, TMP_DIR, type RelayProcess } from '../relay';
import { INITIAL_WINDOW, MAX_OVERSHOOT_BYTES, WINDOW_GROWTH_BUDGET } from '@ctll/protocol';

const MIB = 1024 * 1024;
/** Far more than the path between the test server and a stalled client can hold: every stream stalls long before its end. */
const BLOB_BYTES = 1024 * MIB;
/** The proxy's RSS counts as settled once it moved less than this over SETTLE_MS. */
const SETTLE_MIB = 1;
const SETTLE_MS = 3000;
/** A stalled client is not silence (REQUEST_TIMEOUT_MS counts only the desktop's silence), so the streams may wait this long; 100 streams sharing one WebSocket take a while to fill on a busy machine. */
const SETTLE_TIMEOUT_MS = 60_000;

const rss = (pid: number | undefined) => (pid === undefined ? Number.NaN : (memoryOf(pid)?.rssMb ?? Number.NaN));

interface Stalled {
  /** Resolves with the status once the answer's head arrived (0 on error). */
  head: Promise<number>;
  close(): void;
}

/** A GET whose caller never reads the answer's body: the response stays paused from its first byte. */
function openStalled(route: Route, agent: http.Agent, path: string): Stalled {
  const req = http.request({ host: route.host, port: route.port, method: 'GET', path: route.prefix + path, headers: route.headers, agent });
  const head = new Promise<number>((resolve) => {
    req.on('error', () => resolve(0));
    req.on('response', (res) => {
      res.pause();
      resolve(res.statusCode ?? 0);
    });
  });
  req.end();
  return { head, close: () => req.destroy() };
}

/**
 * One download read to its end before the first snapshot: what a proxy builds once, on its first
 * relayed stream (the code of those paths, compiled on first use and kept in V8's heap, and the
 * link's own tables), is then in both snapshots instead of being divided among the streams.
 */
const WARMUP_BYTES = 4 * MIB;

function readWhole(route: Route, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: route.host, port: route.port, method: 'GET', path: route.prefix + path, headers: route.headers, agent: false }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`warm-up download answered ${res.statusCode}`));
      res.resume();
      res.on('end', () => resolve());
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Samples the proxy's RSS until it moved less than SETTLE_MIB over SETTLE_MS (or the timeout). */
async function settle(pid: number): Promise<{ settled: boolean; ms: number }> {
  const began = nowMs();
  const samples: Array<{ at: number; mb: number }> = [];
  for (;;) {
    await sleep(250);
    const at = nowMs();
    samples.push({ at, mb: rss(pid) });
    const window = samples.filter((s) => at - s.at <= SETTLE_MS);
    if (at - samples[0].at >= SETTLE_MS) {
      const mbs = window.map((s) => s.mb);
      if (Math.max(...mbs) - Math.min(...mbs) < SETTLE_MIB) return { settled: true, ms: at - began };
    }
    if (at - began > SETTLE_TIMEOUT_MS) return { settled: false, ms: at - began };
  }
}

export const streams: Scenario = {
  id: 'streams',
  title: '8. Memory per open stream (callers that stop reading)',
  async run(ctx: BenchContext) {
    const { counts } = ctx.sizes.streams;
    const transports = ctx.quick ? [ctx.relays[0]?.transport ?? 'ws'] : [...new Set(ctx.relays.filter((r) => r.driver === 'process').map((r) => r.transport))];
    const rows: Row[] = [];
    const summary: Record<string, number> = {};
    // An api-backend of its own, whose proxies and bridges answer the garbage-collection hook.
    // BRIDGE_MAX_QUEUE (64 by default) refuses long-poll requests past a backlog with 503; it bounds
    // waiting requests, not memory, so it is lifted here like the bench lifts the per-user limits.
    const relay = await startRelayProcess({
      driver: 'process',
      proxyScript: path.join(BUILD_DIR, 'gc-proxy.cjs'),
      nodeArgs: ['--require', GC_HOOK],
      env: { BRIDGE_MAX_QUEUE: String(Math.max(...counts) * 2) },
    });
    try {
      for (const transport of transports) {
        for (const n of counts) {
          ctx.log(`streams: ${n} stalled downloads over ${transport}`);
          const row = await measure(ctx, relay, transport, n);
          rows.push(row);
          if (transport === transports[0]) {
            summary[`proxyRssMiBPerStream${n}`] = row['proxy RSS MiB/stream'] as number;
            summary[`proxyHeldMiBPerStream${n}`] = row['proxy held MiB/stream'] as number;
          }
        }
      }
    } finally {
      await relay.close();
    }
    const perDirection = (INITIAL_WINDOW + MAX_OVERSHOOT_BYTES) / MIB;
    summary.boundMiBPerStreamPerDirection = round(perDirection, 4);
    return {
      status: 'ok' as const,
      columns: [
        'route',
        'streams',
        'answers started',
        'refused',
        'settled after s',
        'proxy RSS before MiB',
        'proxy RSS after MiB',
        'proxy RSS MiB/stream',
        'proxy held MiB/stream',
        'proxy bound MiB/stream',
        'api-backend RSS MiB/stream',
        'api-backend held MiB/stream',
        'bridge RSS MiB/stream',
        'bridge held MiB/stream',
      ],
      rows,
      notes: [
        `Each stream is a \`GET /blob\` of ${BLOB_BYTES / MIB} MiB through the relay whose caller reads the answer's head and then nothing: the answer fills the sockets on its way, then the credit window, and stalls. Every count runs as a user of its own (a fresh streaming-proxy process) with a real bridge (\`node bridge/dist/cli.js\`), on an api-backend of the scenario's own with the process driver and BRIDGE_MAX_QUEUE raised above the largest count (its default, 64, answers a long-poll request past that backlog 503: a bound on waiting requests, not on memory).`,
        `Before the first reading, one ${WARMUP_BYTES / MIB} MiB download through the same proxy is read to its end, so what a proxy builds once on its first stream (code compiled on first use, the link's tables) is not counted as the streams'.`,
        `RSS (VmRSS) is read just before the streams open and again once the proxy's RSS moved less than ${SETTLE_MIB} MiB over ${SETTLE_MS / 1000} s; "RSS MiB/stream" is the growth divided by the number of streams that started (a refused request holds nothing). It includes garbage not yet collected and memory the allocator keeps after a burst, so it is an upper bound.`,
        '"held MiB/stream": V8 heap used plus external memory (Buffers) after a full garbage collection (children/gc-hook.ts, through the in-process inspector), at the same two moments, divided by the number of streams that started: what the process really holds per stalled stream.',
        `The bound ("proxy bound MiB/stream"): per stream and direction a side holds at most one window plus one frame, ${INITIAL_WINDOW / MIB} MiB + ${MAX_OVERSHOOT_BYTES / 1024} KiB = ${round(perDirection, 4)} MiB (protocol/src/flow.ts); a download uses one direction, so over long-poll the proxy should hold under ${round(perDirection, 3)} MiB per stream here, and under ${round(2 * perDirection, 3)} MiB with a stalled upload beside it. On the WebSocket a stream's window grows while its reader keeps up (protocol/src/stream-window.ts), and the sockets behind a caller that stopped reading take bytes for a while, so a stream may stall with a grown window: the proxy's streams together hold at most ${WINDOW_GROWTH_BUDGET / MIB} MiB more, which the bound spreads over the N streams.`,
        'Bytes held in kernel socket buffers (between the client and api-backend, api-backend and the proxy, the proxy and the bridge) are in no process\'s RSS and are not counted; the kernel bounds them per socket.',
      ],
      summary,
    };
  },
};

const GC_HOOK = path.join(BUILD_DIR, 'gc-hook.cjs');
const GC_DIR = path.join(TMP_DIR, 'gc');

interface Snapshot {
  rssMb: number;
  /** V8 heap used plus external memory after a full collection, MiB. */
  heldMb: number;
}

/** Asks a process running gc-hook for a full collection, then reads what it holds and its RSS. */
async function snapshot(pid: number): Promise<Snapshot> {
  const file = path.join(GC_DIR, `${pid}.json`);
  fs.rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  const usage = await waitUntil(
    () => {
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8')) as NodeJS.MemoryUsage;
      } catch {
        return undefined;
      }
    },
    10_000,
    `process ${pid} to report its memory after a garbage collection`,
  );
  fs.rmSync(file, { force: true });
  return { rssMb: rss(pid), heldMb: (usage.heapUsed + usage.external) / MIB };
}

/** What the proxy may hold per stalled download over `transport` with `n` of them (see the notes). */
function boundPerStream(transport: string, n: number): number {
  const perDirection = (INITIAL_WINDOW + MAX_OVERSHOOT_BYTES) / MIB;
  return round(transport === 'ws' ? perDirection + WINDOW_GROWTH_BUDGET / MIB / n : perDirection, 3);
}

async function measure(ctx: BenchContext, relay: RelayProcess, transport: string, n: number): Promise<Row> {
  const userId = `streams-${transport}-${n}`;
  const bridge = await startBridgeProcess(relay, userId, ctx.llm.url, transport, ['--require', GC_HOOK]);
  const agent = agentFor(n);
  const open: Stalled[] = [];
  try {
    await sleep(1000);
    const proxyPid = relay.proxyPid(userId);
    if (proxyPid === undefined) throw new Error(`no streaming-proxy process found for ${userId}`);
    const pids = { proxy: proxyPid, api: relay.proc.pid, bridge: bridge.proc.pid };
    const take = async () => ({ proxy: await snapshot(pids.proxy), api: await snapshot(pids.api), bridge: await snapshot(pids.bridge) });
    const route = relayRoute(relay, userId, `relay ${transport}/process`);
    await readWhole(route, `/blob?n=${WARMUP_BYTES}`);
    const before = await take();
    for (let i = 0; i < n; i++) open.push(openStalled(route, agent, `/blob?n=${BLOB_BYTES}`));
    const statuses = await Promise.all(open.map((s) => s.head));
    const started = statuses.filter((status) => status === 200).length;
    const refused = statuses.filter((status) => status !== 200);
    if (started === 0) throw new Error(`no stream started over ${transport}: statuses ${[...new Set(refused)].join(', ')}`);
    const { settled, ms } = await settle(proxyPid);
    // RSS as it stands once settled, then what each holds after a collection.
    const rssAfter = { proxy: rss(pids.proxy), api: rss(pids.api), bridge: rss(pids.bridge) };
    const after = await take();
    // Per stream that really stalled: a refused request holds nothing.
    const rssPer = (key: keyof typeof pids) => round((rssAfter[key] - before[key].rssMb) / started, 3);
    const heldPer = (key: keyof typeof pids) => round((after[key].heldMb - before[key].heldMb) / started, 3);
    return {
      route: `relay ${transport}/process`,
      streams: n,
      'answers started': started,
      refused: refused.length > 0 ? `${refused.length} (status ${[...new Set(refused)].join(', ')})` : 0,
      'settled after s': settled ? round(ms / 1000, 1) : `not within ${SETTLE_TIMEOUT_MS / 1000}`,
      'proxy RSS before MiB': round(before.proxy.rssMb, 1),
      'proxy RSS after MiB': round(rssAfter.proxy, 1),
      'proxy RSS MiB/stream': rssPer('proxy'),
      'proxy held MiB/stream': heldPer('proxy'),
      'proxy bound MiB/stream': boundPerStream(transport, n),
      'api-backend RSS MiB/stream': rssPer('api'),
      'api-backend held MiB/stream': heldPer('api'),
      'bridge RSS MiB/stream': rssPer('bridge'),
      'bridge held MiB/stream': heldPer('bridge'),
    };
  } finally {
    for (const s of open) s.close();
    agent.destroy();
    await bridge.close();
  }
}
