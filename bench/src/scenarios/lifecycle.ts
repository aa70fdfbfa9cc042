/**
 * Scenario 6, proxy lifecycle: `POST /api/proxy/start` until the user's proxy is routable (the
 * relay's `/api/tunnel/<user>/health` reports it running, which the relay learns by calling the
 * proxy itself), one user at a time and 20 users at once; then the idle memory of one proxy.
 *
 * With the docker driver (when it runs here) also: how many proxies this machine holds, adding
 * ten users at a time until a start fails, a start takes over 10 s, less than 1 GiB of memory is
 * left, or 300 proxies run. The process driver's figures are recorded beside it as the baseline.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { BenchContext, Row, Scenario } from '../context';
import { agentFor, send, type Route } from '../http-client';
import { distribution, nowMs, round, sleep } from '../measure';
import { childPids, environOf, memoryOf } from '../procs';
import type { RelayProcess } from '../relay';
import { userHash } from '../../../api-backend/src/proxy/naming';

export const lifecycle: Scenario = {
  id: 'lifecycle',
  title: '6. Proxy start to routable, idle proxy memory, proxies per machine',
  async run(ctx: BenchContext) {
    const { sequential, concurrent, capacityMax } = ctx.sizes.lifecycle;
    const rows: Row[] = [];
    const notes: string[] = [
      `Start: POST /api/proxy/start, then GET /api/tunnel/<user>/health until it reports the proxy running; ${sequential} users one at a time, then ${concurrent} users at once (each stopped afterwards).`,
    ];
    const summary: Record<string, number | string | null> = { concurrentUsers: concurrent };
    const drivers: Array<[string, RelayProcess | undefined, string | undefined]> = [
      ['process', ctx.processRelay, undefined],
      ['docker', ctx.dockerRelay, ctx.dockerUnavailable],
    ];
    for (const [driver, relay, unavailable] of drivers) {
      if (!relay) {
        rows.push({ driver, measure: 'all', value: null, note: `not measured: ${unavailable}` });
        continue;
      }
      ctx.log(`lifecycle: ${driver} driver, ${sequential} sequential starts`);
      const seq: number[] = [];
      for (let i = 0; i < sequential; i++) {
        const user = `life-seq-${driver}-${i}`;
        seq.push(await startToRoutable(relay, user));
        await call(relay, user, 'POST', '/api/proxy/stop');
      }
      ctx.log(`lifecycle: ${driver} driver, ${concurrent} users at once`);
      const users = Array.from({ length: concurrent }, (_, i) => `life-conc-${driver}-${i}`);
      const conc = await Promise.all(users.map((user) => startToRoutable(relay, user)));
      await sleep(2000);
      const idleMb = driver === 'docker' ? dockerIdleMemory() : processIdleMemory(relay, users);
      await Promise.all(users.map((user) => call(relay, user, 'POST', '/api/proxy/stop')));
      const s = distribution(seq.filter(Number.isFinite));
      const c = distribution(conc.filter(Number.isFinite));
      const failures = seq.filter((v) => !Number.isFinite(v)).length + conc.filter((v) => !Number.isFinite(v)).length;
      rows.push(
        { driver, measure: 'start → routable, one at a time', 'p50 ms': s.p50, 'p95 ms': s.p95, 'max ms': s.max, failures },
        { driver, measure: `start → routable, ${concurrent} users at once`, 'p50 ms': c.p50, 'p95 ms': c.p95, 'max ms': c.max },
        { driver, measure: 'idle proxy memory (MiB, mean)', value: idleMb },
      );
      summary[`${driver}SeqP50Ms`] = s.p50;
      summary[`${driver}SeqP95Ms`] = s.p95;
      summary[`${driver}ConcP50Ms`] = c.p50;
      summary[`${driver}ConcP95Ms`] = c.p95;
      summary[`${driver}IdleMb`] = idleMb;
      if (driver === 'docker') {
        ctx.log(`lifecycle: docker capacity, up to ${capacityMax} proxies`);
        const capacity = await dockerCapacity(relay, capacityMax, ctx.log);
        rows.push({ driver, measure: 'proxies held at once', value: capacity.held, note: capacity.stoppedBecause });
        summary.dockerCapacity = capacity.held;
        summary.dockerCapacityStoppedBecause = capacity.stoppedBecause;
      }
    }
    notes.push('Idle memory: process driver = VmRSS of each proxy process; docker driver = the container\'s memory as `docker stats` reports it (its cgroup), 2 s after start, no desktop connected.');
    return { status: 'ok' as const, columns: ['driver', 'measure', 'p50 ms', 'p95 ms', 'max ms', 'value', 'failures', 'note'], rows, notes, summary };
  },
};

async function call(relay: RelayProcess, user: string, method: string, path: string): Promise<{ status: number; body: string }> {
  const route: Route = { id: 'control', kind: 'relay', host: '127.0.0.1', port: relay.port, prefix: '', headers: { authorization: `Bearer ${relay.token(user)}` } };
  const agent = agentFor(1);
  let body = '';
  const outcome = await send(route, agent, { method, path, timeoutMs: 60_000, onChunk: (chunk) => (body += chunk.toString('utf8')) });
  agent.destroy();
  return { status: outcome.status, body };
}

/** Milliseconds from the start call until the relay routes to the proxy; NaN when it never does. */
async function startToRoutable(relay: RelayProcess, user: string): Promise<number> {
  const began = nowMs();
  const started = await call(relay, user, 'POST', '/api/proxy/start');
  if (started.status >= 300) return Number.NaN;
  for (let i = 0; i < 600; i++) {
    const health = await call(relay, user, 'GET', `/api/tunnel/${user}/health`);
    if (health.status === 200 && /"proxy":"running"/.test(health.body)) return round(nowMs() - began, 1);
    await sleep(10);
  }
  return Number.NaN;
}

/** Mean VmRSS of the given users' proxy processes (found by the owner hash in their environment). */
function processIdleMemory(relay: RelayProcess, users: string[]): number {
  const hashes = new Set(users.map((user) => userHash(user)));
  const rss = childPids(relay.proc.pid)
    .filter((pid) => hashes.has(environOf(pid).PROXY_USER_HASH ?? ''))
    .map((pid) => memoryOf(pid)?.rssMb)
    .filter((v): v is number => v !== undefined);
  return rss.length ? round(rss.reduce((a, b) => a + b, 0) / rss.length, 1) : Number.NaN;
}

function dockerIdleMemory(): number {
  try {
    const out = execFileSync('docker', ['stats', '--no-stream', '--format', '{{.Name}} {{.MemUsage}}'], { encoding: 'utf8', timeout: 60_000 });
    const values = out
      .split('\n')
      .filter((line) => line.startsWith('ctll-proxy-'))
      .map((line) => parseMiB(line.split(' ')[1] ?? ''))
      .filter(Number.isFinite);
    return values.length ? round(values.reduce((a, b) => a + b, 0) / values.length, 1) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function parseMiB(text: string): number {
  const match = /^([\d.]+)\s*(B|KiB|MiB|GiB|kB|MB|GB)$/.exec(text.trim());
  if (!match) return Number.NaN;
  const factor: Record<string, number> = { B: 1 / 1048576, KiB: 1 / 1024, kB: 1 / 1024, MiB: 1, MB: 1, GiB: 1024, GB: 1024 };
  return Number(match[1]) * factor[match[2]];
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
      const times = await Promise.all(batch.map((user) => startToRoutable(relay, user)));
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
