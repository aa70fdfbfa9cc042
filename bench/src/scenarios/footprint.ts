/**
 * Scenario 6b, idle footprint: what the relay costs while nobody uses it. First api-backend itself
 * on the embedded default (DATABASE_URL unset, so PGlite in a fresh DATA_DIR, no user connected),
 * then one user's proxy: a few users' proxies are started one at a time (no desktop connected),
 * left alone until start-up's garbage is collected, and then measured: the process driver's
 * children from /proc (VmRSS, and from smaps_rollup the part no other process shares and the
 * proportional share), the docker driver's containers as `docker stats` reports them (their
 * cgroup). A bare Node process on the same machine is the floor.
 *
 * Runs alone with `npm run bench -- --only footprint` (three to four minutes with the bench's
 * start-up on a busy 2-core machine). `--quick` (CI) leaves the api-backend row out: PGlite's first
 * start in a fresh folder alone took 26-42 s there.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { forEachDriver, type BenchContext, type Cell, type Row, type Scenario } from '../context';
import { agentFor, send, type Route } from '../http-client';
import { round, sleep } from '../measure';
import { childPids, environOf, memoryOf } from '../procs';
import { startRelayProcess, type RelayProcess } from '../relay';
import { containerName, userHash } from '../../../api-backend/src/proxy/naming';

const USERS = 5;
/** Long enough for V8's idle-time collection after start-up; the proxy's pings are 15 s apart. */
const SETTLE_MS = 10_000;
/** As section "Footprint at idle" measured it by hand: VmRSS a few seconds after /health first answers. */
const API_SETTLE_MS = 5_000;
/**
 * Idle is measured later: V8's memory reducer collects start-up's garbage (PGlite's open among it)
 * only once a process has been quiet for several seconds, about 11 s after /health on this machine
 * (161 -> 137 MB by hand, 2026-12-02), as the proxies' SETTLE_MS allows for theirs.
 */
const API_IDLE_MS = 30_000;

export const footprint: Scenario = {
  id: 'footprint',
  title: '6b. Idle proxy footprint',
  async run(ctx: BenchContext) {
    const users = ctx.quick ? 2 : USERS;
    const rows: Row[] = [];
    const summary: Record<string, number | string | null> = {};
    if (ctx.quick) {
      rows.push({ driver: 'none', measure: 'api-backend, embedded PGlite, idle', value: null, note: 'not measured: not in --quick (PGlite\'s first start takes half a minute)' });
    } else {
      await measureApiBackend(ctx, rows, summary);
    }

    const bare = await bareNode();
    rows.push({ driver: 'none', measure: 'bare node -e "setInterval(() => {}, 1e9)": resident', value: bare.rssMb, note: 'the floor: any Node process on this machine' });
    rows.push({ driver: 'none', measure: 'bare node: private (not shared with other processes)', value: bare.privateMb });
    rows.push({ driver: 'none', measure: 'bare node: proportional (PSS)', value: bare.pssMb, note: 'depends on how many Node processes run on the host' });
    summary.bareNodeRssMb = bare.rssMb;
    summary.bareNodePrivateMb = bare.privateMb;
    summary.bareNodePssMb = bare.pssMb;

    await forEachDriver(ctx, rows, async (driver, relay) => {
      const names = Array.from({ length: users }, (_, i) => `footprint-${driver}-${i}`);
      for (const user of names) {
        const started = await call(relay, user, 'POST', '/api/proxy/start');
        if (started >= 300) throw new Error(`footprint: starting ${user}'s proxy answered ${started}`);
      }
      ctx.log(`footprint: ${users} ${driver} proxies started; ${SETTLE_MS / 1000} s to settle`);
      await sleep(SETTLE_MS);
      try {
        if (driver === 'process') {
          const hashes = new Set(names.map((user) => userHash(user)));
          const pids = childPids(relay.proc.pid).filter((pid) => hashes.has(environOf(pid).PROXY_USER_HASH ?? ''));
          const memory = pids.map(smapsOf).filter((m): m is Smaps => m !== undefined);
          const rss = mean(memory.map((m) => m.rssMb));
          const priv = mean(memory.map((m) => m.privateMb));
          const pss = mean(memory.map((m) => m.pssMb));
          rows.push({ driver, measure: 'idle proxy process: resident (MiB, mean)', value: rss, note: `${memory.length} processes` });
          rows.push({ driver, measure: 'idle proxy process: private (MiB, mean)', value: priv, note: 'what each extra proxy adds; the rest is the node binary, shared' });
          rows.push({ driver, measure: 'idle proxy process: proportional (PSS, MiB, mean)', value: pss, note: 'private plus its share of the pages it maps with other processes' });
          summary.processIdleMb = rss;
          summary.processIdlePrivateMb = priv;
          summary.processIdlePssMb = pss;
        } else {
          const mem = mean(names.map((user) => dockerMemory(containerName(userHash(user)))).filter(Number.isFinite));
          rows.push({ driver, measure: 'idle proxy container: docker stats (MiB, mean)', value: mem, note: `${users} containers` });
          summary.dockerIdleMb = mem;
        }
      } finally {
        for (const user of names) await call(relay, user, 'POST', '/api/proxy/stop');
      }
    });
    const notes = [
      `api-backend: \`node api-backend/dist/main.js\` with the bench's environment (dev auth, process driver) but DATABASE_URL unset, so the audit runs in embedded PGlite, initialised in a fresh DATA_DIR; no user and no proxy. Resident = VmRSS and peak = VmHWM from /proc/<pid>/status ${API_IDLE_MS / 1000} s after /health first answered (the audit's database is open before api-backend listens), once V8 has collected start-up's garbage, as for the proxies below; VmRSS ${API_SETTLE_MS / 1000} s after /health, before that collection, is given too (the figure this row used to report). MiB (1024 × 1024 bytes), as every figure in this file.`,
      `${users} users' proxies per driver, started one at a time with POST /api/proxy/start, no desktop connected, measured ${SETTLE_MS / 1000} s after the last start.`,
      'process: resident = VmRSS; private = Private_Clean + Private_Dirty from /proc/<pid>/smaps_rollup (pages no other process maps, mostly V8\'s heap and malloc; the ~33 MiB of node\'s own code are shared by every proxy and counted once by the kernel); PSS = Pss from the same file, private plus each shared page divided by the number of processes mapping it, so with several proxies on a host PSS is what each one adds including its share of node\'s code. PSS falls as more Node processes run on the host (every Node program maps the same binary), so it is a figure of this run, not of one proxy alone.',
      'docker: the container\'s memory as `docker stats` reports it (its cgroup\'s usage less inactive page cache), which is what its memory limit counts.',
    ];
    return { status: 'ok' as const, columns: ['driver', 'measure', 'value', 'note'], rows, notes, summary };
  },
};

/** Adds api-backend's idle rows; a failed start is a row saying so, and the proxies are still measured. */
async function measureApiBackend(ctx: BenchContext, rows: Row[], summary: Record<string, Cell>): Promise<void> {
  try {
    const api = await idleApiBackend();
    ctx.log(`footprint: api-backend on PGlite answered /health after ${(api.startMs / 1000).toFixed(1)} s; measured ${API_SETTLE_MS / 1000} s and ${API_IDLE_MS / 1000} s later`);
    rows.push({ driver: 'none', measure: 'api-backend, embedded PGlite, idle: resident (VmRSS, MiB)', value: api.rssMb, note: `DATABASE_URL unset, fresh DATA_DIR, no user; /health after ${(api.startMs / 1000).toFixed(1)} s; measured ${API_IDLE_MS / 1000} s after it` });
    rows.push({ driver: 'none', measure: `api-backend, embedded PGlite: resident ${API_SETTLE_MS / 1000} s after /health (VmRSS, MiB)`, value: api.startupRssMb, note: "start-up's garbage not yet collected" });
    rows.push({ driver: 'none', measure: 'api-backend, embedded PGlite: peak resident (VmHWM, MiB)', value: api.hwmMb, note: 'since its start, PGlite\'s open included' });
    rows.push({ driver: 'none', measure: 'api-backend, embedded PGlite, idle: private (MiB)', value: api.privateMb });
    summary.apiBackendIdleMb = api.rssMb;
    summary.apiBackendStartupMb = api.startupRssMb;
    summary.apiBackendPeakMb = api.hwmMb;
    summary.apiBackendPrivateMb = api.privateMb;
  } catch (error) {
    // The proxies' rows do not depend on it: they are still measured.
    rows.push({ driver: 'none', measure: 'api-backend, embedded PGlite, idle', value: null, note: `not measured: ${(error as Error).message.split('\n')[0]}` });
  }
}

interface Smaps {
  rssMb: number;
  privateMb: number;
  /** Proportional set size: private pages plus each shared page divided by the processes that map it. */
  pssMb: number;
}

function smapsOf(pid: number): Smaps | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { rssMb: kb('Rss') / 1024, privateMb: (kb('Private_Clean') + kb('Private_Dirty')) / 1024, pssMb: kb('Pss') / 1024 };
  } catch {
    return undefined;
  }
}

interface ApiBackendIdle {
  startMs: number;
  /** VmRSS API_SETTLE_MS after /health: before V8's memory reducer ran. */
  startupRssMb: number;
  rssMb: number;
  hwmMb: number;
  privateMb: number;
}

/**
 * api-backend on the embedded default, as an operator who sets nothing runs it: its own process
 * (not the bench's shared relays, which may use DATABASE_URL and carry the bench's users), PGlite
 * initialised in a fresh DATA_DIR, nobody connected. Stopped, and its folder removed, afterwards.
 */
async function idleApiBackend(): Promise<ApiBackendIdle> {
  const began = Date.now();
  const relay = await startRelayProcess({ driver: 'process', env: { DATABASE_URL: '' } });
  const startMs = Date.now() - began;
  try {
    await sleep(API_SETTLE_MS);
    const startup = memoryOf(relay.proc.pid);
    await sleep(API_IDLE_MS - API_SETTLE_MS);
    const status = memoryOf(relay.proc.pid);
    const smaps = smapsOf(relay.proc.pid);
    return {
      startMs,
      startupRssMb: round(startup?.rssMb ?? Number.NaN, 1),
      rssMb: round(status?.rssMb ?? Number.NaN, 1),
      hwmMb: round(status?.hwmMb ?? Number.NaN, 1),
      privateMb: round(smaps?.privateMb ?? Number.NaN, 1),
    };
  } finally {
    await relay.close();
  }
}

/** A bare Node process's memory on this machine, measured like a proxy's, after the same settling. */
async function bareNode(): Promise<Smaps> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], { stdio: 'ignore' });
  try {
    await sleep(3000);
    const memory = child.pid !== undefined ? smapsOf(child.pid) : undefined;
    return { rssMb: round(memory?.rssMb ?? Number.NaN, 1), privateMb: round(memory?.privateMb ?? Number.NaN, 1), pssMb: round(memory?.pssMb ?? Number.NaN, 1) };
  } finally {
    child.kill();
  }
}

function mean(values: number[]): number {
  return values.length ? round(values.reduce((a, b) => a + b, 0) / values.length, 1) : Number.NaN;
}

async function call(relay: RelayProcess, user: string, method: string, path: string): Promise<number> {
  const route: Route = { id: 'control', kind: 'relay', host: '127.0.0.1', port: relay.port, prefix: '', headers: { authorization: `Bearer ${relay.token(user)}` } };
  const agent = agentFor(1);
  const outcome = await send(route, agent, { method, path, timeoutMs: 60_000, onChunk: () => {} });
  agent.destroy();
  return outcome.status;
}

function dockerMemory(name: string): number {
  try {
    const out = execFileSync('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', name], { encoding: 'utf8', timeout: 60_000 });
    return parseMiB(out.split('/')[0] ?? '');
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
