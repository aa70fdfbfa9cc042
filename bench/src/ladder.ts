/**
 * The open-loop load ladder the scale scenarios climb: short generations offered at a fixed rate
 * (requests are sent on schedule whether or not earlier ones finished), one step per rate, with
 * the CPU each watched process used during the step read from /proc. A step is healthy when under
 * 1 % of requests fail, at least 90 % of the offered rate completes, and p99 completion time stays
 * within twice the first step's; the knee is the last healthy step, and a ladder stops at the
 * first unhealthy one, so a run ends by itself.
 */
import type { Row } from './context';
import { openLoopAgent, send, type Outcome, type Route } from './http-client';
import { distribution, nowMs, round, sleep } from './measure';
import { cpuSeconds } from './procs';

export interface Step {
  rate: number;
  issued: number;
  ok: number;
  errors: number;
  firstError?: string;
  throughput: number;
  p50: number;
  p99: number;
  ttfbP99: number;
  /** Share of one core each watched group of processes used during the step (100 = one core). */
  cpu: Record<string, number>;
}

export interface LadderLoad {
  rates: number[];
  stepMs: number;
  body: Buffer;
  path: string;
}

export interface Knee {
  rate: number;
  /** Every step of the ladder was healthy: the knee lies above its top. */
  beyond: boolean;
}

/** Pids by role, asked again at every step (proxies may come and go). */
export type Watched = () => Record<string, number[]>;

/** Climbs the ladder until a step is unhealthy; `pick(i)` is the route of the i-th request. */
export async function climb(load: LadderLoad, pick: (i: number) => Route, watched: Watched, log: (rate: number) => void): Promise<Step[]> {
  const steps: Step[] = [];
  for (const rate of load.rates) {
    log(rate);
    const step = await runStep(pick, rate, load, watched);
    steps.push(step);
    if (!healthy(step, steps[0])) break;
  }
  return steps;
}

export function healthy(step: Step, first: Step): boolean {
  return step.errors <= step.issued * 0.01 && step.throughput >= step.rate * 0.9 && step.p99 <= Math.max(2 * first.p99, first.p99 + 20);
}

export function kneeOf(steps: Step[], rates: number[]): Knee {
  const good = steps.filter((step) => healthy(step, steps[0]));
  const last = good[good.length - 1];
  return { rate: last?.rate ?? 0, beyond: good.length === steps.length && steps.length === rates.length };
}

export function kneeText(knee: Knee): string {
  return knee.beyond ? `above ${knee.rate}` : String(knee.rate);
}

/** The group that used the most CPU in a step, e.g. `streaming-proxies 103 %`. */
export function busiest(step: Step): string {
  const [name, pct] = Object.entries(step.cpu).reduce((a, b) => (b[1] > a[1] ? b : a), ['none', 0]);
  return `${name} ${pct} %`;
}

/** One table row per step, under the columns the scale scenarios share. */
export function stepRow(route: string, step: Step, first: Step): Row {
  return {
    route,
    'offered req/s': step.rate,
    'completed req/s': round(step.throughput, 1),
    requests: step.issued,
    errors: step.errors,
    'p50 ms': step.p50,
    'p99 ms': step.p99,
    'first byte p99 ms': step.ttfbP99,
    healthy: healthy(step, first),
    'CPU % by process': Object.entries(step.cpu)
      .map(([name, pct]) => `${name} ${pct}`)
      .join(', '),
    'first error': step.firstError ?? null,
  };
}

export const STEP_COLUMNS = ['route', 'offered req/s', 'completed req/s', 'requests', 'errors', 'p50 ms', 'p99 ms', 'first byte p99 ms', 'healthy', 'CPU % by process'];

async function runStep(pick: (i: number) => Route, rate: number, load: LadderLoad, watched: Watched): Promise<Step> {
  const agent = openLoopAgent(pick(0));
  const pids = watched();
  const cpuOf = (list: number[]) => list.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const cpuBefore = Object.fromEntries(Object.entries(pids).map(([name, list]) => [name, cpuOf(list)]));
  const began = nowMs();
  const inflight: Promise<Outcome>[] = [];
  let issued = 0;
  while (nowMs() - began < load.stepMs) {
    const due = Math.floor(((nowMs() - began) / 1000) * rate);
    while (issued < due) {
      inflight.push(send(pick(issued), agent, { method: 'POST', path: load.path, body: load.body, headers: { 'content-type': 'application/json' }, timeoutMs: 20_000 }));
      issued += 1;
    }
    await sleep(1);
  }
  const outcomes = await Promise.all(inflight);
  const elapsedS = (nowMs() - began) / 1000;
  agent.destroy();
  const cpu = Object.fromEntries(Object.entries(pids).map(([name, list]) => [name, Math.round(((cpuOf(list) - cpuBefore[name]) / elapsedS) * 100)]));
  const good = outcomes.filter((o) => o.status === 200 && !o.error);
  const bad = outcomes.filter((o) => o.status !== 200 || o.error);
  const lastEnd = Math.max(began + load.stepMs, ...outcomes.map((o) => o.endMs));
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
