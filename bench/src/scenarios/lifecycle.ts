/**
 * Scenario 6, proxy lifecycle: `POST /api/proxy/start` until the user's proxy is routable (the
 * relay's `/api/tunnel/<user>/health` reports it running, which the relay learns by calling the
 * proxy itself), one user at a time and 20 users at once. (What an idle proxy costs is footprint.ts.)
 *
 * With the docker driver (when it runs here) also: how many proxies this machine holds, adding
 * ten users at a time until a start fails, a start takes over 10 s, less than 1 GiB of memory is
 * left, or 300 proxies run. The process driver's figures are recorded beside it as the baseline.
 */
import fs from 'node:fs';
import { forEachDriver, type BenchContext, type Row, type Scenario } from '../context';
import { agentFor, send, type Route } from '../http-client';
import { distribution, nowMs, round, sleep, type Distribution } from '../measure';
import type { RelayProcess } from '../relay';

export const lifecycle: Scenario = {
  id: 'lifecycle',
  title: '6. Proxy start to routable, proxies per machine',
  async run(ctx: BenchContext) {
    const { sequential, concurrent, capacityMax } = ctx.sizes.lifecycle;
    const rows: Row[] = [];
    const notes: string[] = [
      `Start: POST /api/proxy/start, then GET /api/tunnel/<user>/health until it reports the proxy running; ${sequential} users one at a time, then ${concurrent} users at once (each stopped afterwards).`,
    ];
    const summary: Record<string, number | string | null> = { concurrentUsers: concurrent };
    await forEachDriver(ctx, rows, async (driver, relay) => {
      const { s, c, failures } = await startTimes(relay, `life-${driver}`, sequential, concurrent, (m) => ctx.log(`lifecycle: ${driver} driver, ${m}`));
      rows.push(
        { driver, measure: 'start → routable, one at a time', 'p50 ms': s.p50, 'p95 ms': s.p95, 'max ms': s.max, failures },
        { driver, measure: `start → routable, ${concurrent} users at once`, 'p50 ms': c.p50, 'p95 ms': c.p95, 'max ms': c.max },
      );
      summary[`${driver}SeqP50Ms`] = s.p50;
      summary[`${driver}SeqP95Ms`] = s.p95;
      summary[`${driver}ConcP50Ms`] = c.p50;
      summary[`${driver}ConcP95Ms`] = c.p95;
      if (driver === 'docker') {
        ctx.log(`lifecycle: docker capacity, up to ${capacityMax} proxies`);
        const capacity = await dockerCapacity(relay, capacityMax, ctx.log);
        rows.push({ driver, measure: 'proxies held at once', value: capacity.held, note: capacity.stoppedBecause });
        summary.dockerCapacity = capacity.held;
        summary.dockerCapacityStoppedBecause = capacity.stoppedBecause;
      }
    });
    return { status: 'ok' as const, columns: ['driver', 'measure', 'p50 ms', 'p95 ms', 'max ms', 'value', 'failures', 'note'], rows, notes, summary };
  },
};

/**
 * Start → routable for `sequential` users one at a time, then `concurrent` users at once, each
 * stopped afterwards; users are named `<prefix>-seq-<i>` and `<prefix>-conc-<i>`.
 */
export async function startTimes(
  relay: RelayProcess,
  prefix: string,
  sequential: number,
  concurrent: number,
  log: (message: string) => void,
): Promise<{ s: Distribution; c: Distribution; failures: number; firstFailure?: string }> {
  log(`${sequential} sequential starts`);
  const seq: Timed[] = [];
  for (let i = 0; i < sequential; i++) {
    const user = `${prefix}-seq-${i}`;
    seq.push(await startToRoutable(relay, user));
    await call(relay, user, 'POST', '/api/proxy/stop');
  }
  log(`${concurrent} users at once`);
  const users = Array.from({ length: concurrent }, (_, i) => `${prefix}-conc-${i}`);
  const conc = await Promise.all(users.map((user) => startToRoutable(relay, user)));
  await Promise.all(users.map((user) => call(relay, user, 'POST', '/api/proxy/stop')));
  const failed = [...seq, ...conc].filter((t) => t.error !== undefined);
  const times = (list: Timed[]) => distribution(list.filter((t) => t.error === undefined).map((t) => t.ms));
  return { s: times(seq), c: times(conc), failures: failed.length, firstFailure: failed[0]?.error };
}

async function call(relay: RelayProcess, user: string, method: string, path: string): Promise<{ status: number; body: string }> {
  const route: Route = { id: 'control', kind: 'relay', host: '127.0.0.1', port: relay.port, prefix: '', headers: { authorization: `Bearer ${relay.token(user)}` } };
  const agent = agentFor(1);
  let body = '';
  const outcome = await send(route, agent, { method, path, timeoutMs: 60_000, onChunk: (chunk) => (body += chunk.toString('utf8')) });
  agent.destroy();
  return { status: outcome.status, body };
}

/** Milliseconds from the start call until the relay routes to the proxy, or why it never did. */
export interface Timed {
  ms: number;
  error?: string;
}

export async function startToRoutable(relay: RelayProcess, user: string): Promise<Timed> {
  const began = nowMs();
  const started = await call(relay, user, 'POST', '/api/proxy/start');
  if (started.status >= 300) return { ms: Number.NaN, error: `start answered ${started.status} after ${Math.round(nowMs() - began)} ms: ${started.body.slice(0, 200)}` };
  for (let i = 0; i < 600; i++) {
    const health = await call(relay, user, 'GET', `/api/tunnel/${user}/health`);
    if (health.status === 200 && /"proxy":"running"/.test(health.body)) return { ms: round(nowMs() - began, 1) };
    await sleep(10);
  }
  return { ms: Number.NaN, error: `not routable ${Math.round(nowMs() - began)} ms after the start call` };
}

function availableMiB(): number {
  const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0) / 1024;
}

async function dockerCapacity(relay: RelayProcess, max: number, log: (message: string) => void): Promise<{ held: number; stoppedBecause: string }> {
  const users: string[] = [];
  let stoppedBecause = `reached the bench's bound of ${max}`;
  try {
    while (users.length < max) {
      const batch = Array.from({ length: Math.min(10, max - users.length) }, (_, i) => `life-cap-${users.length + i}`);
      const times = (await Promise.all(batch.map((user) => startToRoutable(relay, user)))).map((t) => t.ms);
      users.push(...batch);
      const failed = times.filter((t) => !Number.isFinite(t)).length;
      log(`lifecycle: ${users.length} docker proxies, slowest start ${Math.max(...times.filter(Number.isFinite))} ms, ${Math.round(availableMiB())} MiB available`);
      if (failed > 0) {
        stoppedBecause = `${failed} start(s) failed at ${users.length}`;
        return { held: users.length - failed, stoppedBecause };
      }
      if (Math.max(...times) > 10_000) {
        stoppedBecause = `a start took over 10 s at ${users.length}`;
        break;
      }
      if (availableMiB() < 1024) {
        stoppedBecause = `under 1 GiB of memory left at ${users.length}`;
        break;
      }
    }
    return { held: users.length, stoppedBecause };
  } finally {
    for (let i = 0; i < users.length; i += 10) {
      await Promise.all(users.slice(i, i + 10).map((user) => call(relay, user, 'POST', '/api/proxy/stop')));
    }
  }
}
