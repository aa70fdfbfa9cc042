/**
 * Whole frames on the desktop's tunnel (protocol/src/tunnel-whole.ts), on against off, in one short
 * run: the bench's small request (1 KiB in, 1 KiB out, `POST /echo/whole`) at 32 connections
 * through one relay (process driver), with the desktop's bridge offering whole frames in one arm
 * and not in the other. The arms take turns round by round, so this shared machine's noise falls on
 * both alike; only the bridge is started again between arms (api-backend⇄proxy whole frames are on
 * in both, so the difference is the tunnel's alone).
 *
 * Each round sends a fixed number of requests and reads every process's CPU time from /proc right
 * before and after, so the CPU per request holds no warm-up. Prints a table (and the 1-minute load
 * average at start and end); light enough for a minute on a 2-core machine, unlike `npm run bench`.
 *
 *   npm run build && node bench/run.mjs --whole-frames [--requests 1500] [--rounds 3] [--transports ws,poll]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { cpuSeconds, runTool, stopAll } from './procs';
import { relayRoute, startFleet, startLlm, startRelayProcess, type Fleet, type LlmProcess, type RelayProcess } from './relay';
import { CONNECTIONS, driveSmall } from './small-rounds';

const WARMUP = 200;

interface Totals {
  requests: number;
  errors: number;
  seconds: number;
  cpu: Record<string, number>;
}



async function round(relay: RelayProcess, llm: LlmProcess, transport: string, whole: boolean, requests: number, totals: Totals): Promise<void> {
  const userId = 'whole-frames-user';
  const fleet: Fleet = await startFleet(relay, [relay.token(userId)], llm.url, transport, 1, { wholeFrames: whole });
  try {
    if (fleet.connected !== 1) throw new Error(`the bridge did not connect: ${fleet.errors.join('; ')}`);
    const route = relayRoute(relay, userId, `relay ${transport}`, () => ({ bridge: fleet.proc.pid }));
    await driveSmall(route, WARMUP);
    const pids = { ...route.pids!(), 'test server': llm.proc.pid };
    const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
    const result = await driveSmall(route, requests);
    for (const [name, pid] of Object.entries(pids)) totals.cpu[name] = (totals.cpu[name] ?? 0) + cpuSeconds(pid) - before[name];
    totals.requests += requests;
    totals.errors += result.errors;
    totals.seconds += result.seconds;
    if (result.firstError) console.log(`  ${transport} whole=${whole}: ${result.errors} errors, first: ${result.firstError}`);
    console.log(`  ${transport} whole frames ${whole ? 'on ' : 'off'}: ${Math.round(requests / result.seconds)} req/s`);
  } finally {
    await fleet.close();
  }
}

async function main(): Promise<void> {
  const { values: option } = parseArgs({
    options: {
      requests: { type: 'string', default: '1500' },
      rounds: { type: 'string', default: '3' },
      transports: { type: 'string', default: 'ws,poll' },
    },
  });
  const requests = Number(option.requests);
  const rounds = Number(option.rounds);
  const transports = option.transports.split(',');
  const loadAtStart = os.loadavg()[0];
  const llm = await startLlm();
  const relay = await startRelayProcess({ driver: 'process' });
  const results = new Map<string, Totals>();
  try {
    for (const transport of transports) {
      for (let r = 0; r < rounds; r++) {
        // Alternate which arm goes first, so a trend in the machine's load does not favour one.
        for (const whole of r % 2 === 0 ? [true, false] : [false, true]) {
          const key = `${transport} ${whole ? 'on' : 'off'}`;
          const totals = results.get(key) ?? { requests: 0, errors: 0, seconds: 0, cpu: {} };
          results.set(key, totals);
          await round(relay, llm, transport, whole, requests, totals);
        }
      }
    }
  } finally {
    await relay.close();
    await stopAll();
  }
  const names = ['api-backend', 'streaming-proxy', 'bridge', 'test server'];
  console.log(`\n${requests} requests x ${rounds} rounds per arm, ${CONNECTIONS} connections; load average ${loadAtStart.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end (${os.cpus().length} cores)`);
  console.log(`| tunnel | whole frames | req/s | errors | ${names.map((name) => `${name} CPU µs/req`).join(' | ')} | total CPU µs/req |`);
  console.log(`|---|---|---|---|${names.map(() => '---|').join('')}---|`);
  for (const [key, totals] of results) {
    const [transport, arm] = key.split(' ');
    const perRequest = names.map((name) => ((totals.cpu[name] ?? 0) * 1e6) / totals.requests);
    const total = perRequest.reduce((sum, value) => sum + value, 0);
    console.log(`| ${transport} | ${arm} | ${Math.round(totals.requests / totals.seconds)} | ${totals.errors} | ${perRequest.map((value) => Math.round(value)).join(' | ')} | ${Math.round(total)} |`);
  }
}

runTool(main);
