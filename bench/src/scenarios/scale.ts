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
import type { BenchContext, Row, Scenario } from '../context';
import type { Route } from '../http-client';
import { round } from '../measure';
import { childPids } from '../procs';
import { relayRoute, startFleet, startRelayProcess } from '../relay';
import { climb, kneeOf, kneeText, STEP_COLUMNS, stepRow, type LadderLoad, type Watched } from '../ladder';

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
      const load: LadderLoad = { rates, stepMs, body, path: `/api/chat?delayMs=${delayMs}` };
      const ladder = (label: string, pick: (i: number) => Route, watched: Watched) =>
        climb(load, pick, watched, (rate) => ctx.log(`scale: ${label} at ${rate} requests/s for ${stepMs / 1000} s`));
      const relaySteps = await ladder('relay', (i) => routes[i % routes.length], pids);
      const directSteps = await ladder('direct', () => ctx.direct, () => ({ 'test server': [ctx.llm.proc.pid] }));

      const relayKnee = kneeOf(relaySteps, rates);
      const directKnee = kneeOf(directSteps, rates);
      const rows: Row[] = [];
      for (const [route, steps] of [
        ['relay', relaySteps],
        ['direct', directSteps],
      ] as const) {
        for (const step of steps) rows.push(stepRow(route, step, steps[0]));
      }
      return {
        status: 'ok' as const,
        columns: STEP_COLUMNS,
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
