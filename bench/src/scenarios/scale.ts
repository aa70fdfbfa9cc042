/**
 * Scenario 4, scale: many users at once. A fresh api-backend (process driver) gets 100 users,
 * each with a real bridge connected (all in one fleet process) and so a streaming-proxy of their
 * own. Then an open-loop load offers short generations (`/api/chat`, 10 tokens 10 ms apart)
 * spread round-robin over the users at a fixed rate, climbing a ladder: 17/s (1,000
 * requests per minute), then up until a step goes wrong. The same ladder runs against the test
 * server directly, for the ratio.
 *
 * A step is healthy when under 1 % of requests fail, at least 90 % of the offered rate completes,
 * and p99 completion time stays within twice the first step's. The knee is the last healthy
 * step; the ladder stops at the first unhealthy one, so the run ends by itself.
 */
import http from 'node:http';
import type { BenchContext, Row, Scenario } from '../context';
import { send, type Outcome, type Route } from '../http-client';
import { distribution, nowMs, round, sleep } from '../measure';
import { childPids, cpuSeconds } from '../procs';
import { relayRoute, startFleet, startRelayProcess } from '../relay';

interface Step {
  rate: number;
  issued: number;
  ok: number;
  errors: number;
  firstError?: string;
  throughput: number;
  p50: number;
  p99: number;
  ttfbP99: number;
  cpu: Record<string, number>;
}

export const scale: Scenario = {
  id: 'scale',
  title: '4. Scale: many users, streams at once',
  async run(ctx: BenchContext) {
    const { users, rates, stepMs, tokens, delayMs } = ctx.sizes.scale;
    const transport = ctx.relays[0]?.transport ?? 'ws';
    ctx.log(`scale: starting an api-backend and ${users} bridges (${transport}), one proxy per user`);
    // A fresh api-backend, so its figures are the scale run's alone (--quick reuses the shared one).
    const relay = ctx.quick ? ctx.processRelay : await startRelayProcess({ driver: 'process' });
    const userIds = Array.from({ length: users }, (_, i) => `scale-user-${i}`);
    const fleet = await startFleet(relay, userIds.map((id) => relay.token(id)), ctx.llm.url, transport, 8);
    try {
      if (fleet.connected < users) {
        return {
          status: 'failed' as const,
          reason: `only ${fleet.connected} of ${users} bridges connected: ${fleet.errors.join('; ')}`,
          columns: [],
          rows: [],
          notes: [],
        };
      }
      const routes = userIds.map((id) => relayRoute(relay, id, 'relay'));
      const body = Buffer.from(JSON.stringify({ model: 'test-model', stream: true, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: tokens } }));
      const pids = () => ({
        'api-backend': [relay.proc.pid],
        'streaming-proxies': childPids(relay.proc.pid),
        'bridges (fleet)': [fleet.proc.pid],
        'test server': [ctx.llm.proc.pid],
      });
      const ladder = async (label: string, pick: (i: number) => Route, watched: () => Record<string, number[]>) => {
        const steps: Step[] = [];
        for (const rate of rates) {
          ctx.log(`scale: ${label} at ${rate} requests/s for ${stepMs / 1000} s`);
          const step = await runStep(pick, rate, stepMs, body, `/api/chat?delayMs=${delayMs}`, watched);
          steps.push(step);
          if (!healthy(step, steps[0])) break;
        }
        return steps;
      };
      const relaySteps = await ladder('relay', (i) => routes[i % routes.length], pids);
      const directSteps = await ladder('direct', () => ctx.direct, () => ({ 'test server': [ctx.llm.proc.pid] }));

      const knee = (steps: Step[]) => {
        const good = steps.filter((step) => healthy(step, steps[0]));
        const last = good[good.length - 1];
        const all = good.length === steps.length && steps.length === rates.length;
        return { rate: last?.rate ?? 0, beyond: all };
      };
      const relayKnee = knee(relaySteps);
      const directKnee = knee(directSteps);
      const rows: Row[] = [];
      for (const [route, steps] of [
        ['relay', relaySteps],
        ['direct', directSteps],
      ] as const) {
        for (const step of steps) {
          rows.push({
            route,
            'offered req/s': step.rate,
            'completed req/s': round(step.throughput, 1),
            requests: step.issued,
            errors: step.errors,
            'p50 ms': step.p50,
            'p99 ms': step.p99,
            'first byte p99 ms': step.ttfbP99,
            healthy: healthy(step, steps[0]),
            'CPU % by process': Object.entries(step.cpu)
              .map(([name, pct]) => `${name} ${pct}`)
              .join(', '),
            'first error': step.firstError ?? null,
          });
        }
      }
      const kneeText = (k: { rate: number; beyond: boolean }) => (k.beyond ? `above ${k.rate}` : String(k.rate));
      return {
        status: 'ok' as const,
        columns: ['route', 'offered req/s', 'completed req/s', 'requests', 'errors', 'p50 ms', 'p99 ms', 'first byte p99 ms', 'healthy', 'CPU % by process'],
        rows,
        notes: [
          `${users} users, each with a bridge connected over ${transport} and a streaming-proxy of their own (process driver); bridges connected in ${Math.round(fleet.ms / 100) / 10} s.`,
          `Each request is a generation of ${tokens} tokens ${delayMs} ms apart (~${tokens * delayMs} ms), users taken round-robin; ${stepMs / 1000} s per step, open loop (requests are sent on schedule whether or not earlier ones finished).`,
          `Knee (last healthy step): relay ${kneeText(relayKnee)} requests/s, direct ${kneeText(directKnee)} requests/s. Healthy = under 1 % errors, at least 90 % of the offered rate completed, p99 within 2x the first step's.`,
          'CPU %: share of one core each process used during the step (100 = one full core; this machine has 2).',
        ],
        summary: {
          users,
          relayKneeRps: relayKnee.rate,
          relayKneeAboveLadder: relayKnee.beyond,
          directKneeRps: directKnee.rate,
          directKneeAboveLadder: directKnee.beyond,
          kneeRatio: directKnee.rate > 0 ? round(relayKnee.rate / directKnee.rate) : null,
          errorsAt1000PerMin: relaySteps[0]?.errors ?? null,
          p99At1000PerMinMs: relaySteps[0]?.p99 ?? null,
          totalErrors: relaySteps.reduce((sum, step) => sum + step.errors, 0),
        },
      };
    } finally {
      await fleet.close();
      if (relay !== ctx.processRelay) await relay.close();
    }
  },
};

function healthy(step: Step, first: Step): boolean {
  return step.errors <= step.issued * 0.01 && step.throughput >= step.rate * 0.9 && step.p99 <= Math.max(2 * first.p99, first.p99 + 20);
}

async function runStep(pick: (i: number) => Route, rate: number, stepMs: number, body: Buffer, path: string, watched: () => Record<string, number[]>): Promise<Step> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
  const pids = watched();
  const cpuBefore = Object.fromEntries(Object.entries(pids).map(([name, list]) => [name, list.reduce((sum, pid) => sum + cpuSeconds(pid), 0)]));
  const began = nowMs();
  const inflight: Promise<Outcome>[] = [];
  let issued = 0;
  while (nowMs() - began < stepMs) {
    const due = Math.floor(((nowMs() - began) / 1000) * rate);
    while (issued < due) {
      inflight.push(send(pick(issued), agent, { method: 'POST', path, body, headers: { 'content-type': 'application/json' }, timeoutMs: 20_000 }));
      issued += 1;
    }
    await sleep(1);
  }
  const outcomes = await Promise.all(inflight);
  const elapsedS = (nowMs() - began) / 1000;
  agent.destroy();
  const cpu = Object.fromEntries(
    Object.entries(pids).map(([name, list]) => [name, Math.round(((list.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - cpuBefore[name]) / elapsedS) * 100)]),
  );
  const good = outcomes.filter((o) => o.status === 200 && !o.error);
  const bad = outcomes.filter((o) => o.status !== 200 || o.error);
  const lastEnd = Math.max(began + stepMs, ...outcomes.map((o) => o.endMs));
  const completion = distribution(good.map((o) => o.endMs - o.startMs));
  return {
    rate,
    issued,
    ok: good.length,
    errors: bad.length,
    firstError: bad[0] ? (bad[0].error ?? `status ${bad[0].status}`) : undefined,
    throughput: good.length / ((lastEnd - began) / 1000),
    p50: completion.p50,
    p99: completion.p99,
    ttfbP99: distribution(good.map((o) => o.headersMs - o.startMs)).p99,
    cpu,
  };
}
