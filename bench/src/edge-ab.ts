/**
 * Two builds of api-backend side by side: the bench's small request (1 KiB in, 1 KiB out,
 * `POST /echo/whole`) at 32 connections, process driver, a ws bridge (`--transport poll`: a
 * polling one), through a relay running api-backend/dist/main.js (B) and one running another
 * bundle (A, e.g. a copy of the previous build as api-backend/dist/main-base.js). Both arms run
 * this build's proxy and bridge unless --base-proxy or --base-bridge names another for A. Rounds
 * alternate A and B (and which goes first), and every process's CPU time is read from /proc around
 * each round, so the CPU per request holds no warm-up and the machine's noise falls on both arms alike.
 *
 *   npm run build && node bench/run.mjs --edge-ab [--base api-backend/dist/main-base.js] [--base-proxy streaming-proxy/dist/x.js]
 *     [--base-bridge bridge/dist/x.js] [--requests 3000] [--rounds 4] [--warmup 3000] [--sequential 300] [--transport ws|poll]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { agentFor, ok, send, type Route } from './http-client';
import { cpuSeconds, runTool, stopAll } from './procs';
import { median } from './measure';
import { relayRoute, startBridgeProcess, startLlm, startRelayProcess, type BridgeProcess, type RelayProcess } from './relay';
import { SMALL_BODY } from './scenarios/small';
import { CONNECTIONS, driveSmall, smallRequest } from './small-rounds';

/** Per arm before the first round: the JIT settles over the first thousands of requests. */
const WARMUP = 3000;



interface Arm {
  name: string;
  relay: RelayProcess;
  bridge: BridgeProcess;
  route: Route;
  requests: number;
  errors: number;
  seconds: number;
  cpu: Record<string, number>;
  /** µs per request of each process, one entry per round. */
  perRound: Record<string, number[]>;
  /** Milliseconds of each sequential request (one connection, one request at a time). */
  sequential: number[];
}

/** `count` requests one after another on one kept-alive connection: the latency of a lone request. */
async function sequential(route: Route, count: number): Promise<number[]> {
  const agent = agentFor(1);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const outcome = await send(route, agent, smallRequest());
    if (ok(outcome, SMALL_BODY.byteLength)) times.push(outcome.endMs - outcome.startMs);
  }
  agent.destroy();
  return times;
}

async function main(): Promise<void> {
  const { values: option } = parseArgs({
    options: {
      requests: { type: 'string', default: '3000' },
      rounds: { type: 'string', default: '4' },
      base: { type: 'string', default: 'api-backend/dist/main-base.js' },
      'base-proxy': { type: 'string', default: '' },
      'base-bridge': { type: 'string', default: '' },
      warmup: { type: 'string', default: String(WARMUP) },
      sequential: { type: 'string', default: '300' },
      transport: { type: 'string', default: 'ws' },
    },
  });
  const requests = Number(option.requests);
  const rounds = Number(option.rounds);
  const base = path.resolve(option.base);
  // The proxy and the bridge of arm A: this build's unless named (copies beside the built bundles).
  const baseProxy = option['base-proxy'];
  const baseBridge = option['base-bridge'];
  const loadAtStart = os.loadavg()[0];
  const llm = await startLlm();
  const arms: Arm[] = [];
  try {
    const sides = [
      { name: 'A (base)', apiBackend: base, proxyScript: baseProxy ? path.resolve(baseProxy) : undefined, cli: baseBridge ? path.resolve(baseBridge) : undefined },
      { name: 'B (this build)', apiBackend: undefined, proxyScript: undefined, cli: undefined },
    ];
    for (const { name, apiBackend, proxyScript, cli } of sides) {
      const relay = await startRelayProcess({ driver: 'process', apiBackend, proxyScript });
      const userId = `edge-ab-${arms.length}`;
      const bridge = await startBridgeProcess(relay, userId, llm.url, option.transport, [], cli);
      const route = relayRoute(relay, userId, `relay ${option.transport} ${name}`, () => ({ bridge: bridge.proc.pid }));
      arms.push({ name, relay, bridge, route, requests: 0, errors: 0, seconds: 0, cpu: {}, perRound: {}, sequential: [] });
    }
    for (const arm of arms) await driveSmall(arm.route, Number(option.warmup));
    for (let r = 0; r < rounds; r++) {
      for (const arm of r % 2 === 0 ? arms : [...arms].reverse()) {
        const pids = arm.route.pids!();
        const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
        const result = await driveSmall(arm.route, requests);
        for (const [name, pid] of Object.entries(pids)) arm.cpu[name] = (arm.cpu[name] ?? 0) + cpuSeconds(pid) - before[name];
        arm.requests += requests;
        arm.errors += result.errors;
        arm.seconds += result.seconds;
        const us = Object.entries(pids).map(([name, pid]) => {
          const value = ((cpuSeconds(pid) - before[name]) * 1e6) / requests;
          (arm.perRound[name] ??= []).push(value);
          return `${name} ${Math.round(value)}`;
        });
        const lone = await sequential(arm.route, Number(option.sequential));
        arm.sequential.push(...lone);
        console.log(`  round ${r + 1} ${arm.name}: sequential p50 ${median(lone).toFixed(3)} ms`);
        console.log(`  round ${r + 1} ${arm.name}: ${Math.round(requests / result.seconds)} req/s, µs/req ${us.join(', ')}${result.errors ? `, ${result.errors} errors: ${result.firstError}` : ''}`);
      }
    }
  } finally {
    for (const arm of arms) {
      await arm.bridge.close();
      await arm.relay.close();
    }
    await llm.proc.stop();
    await stopAll();
  }
  const names = ['api-backend', 'streaming-proxy', 'bridge'];
  console.log(`\n${requests} requests x ${rounds} rounds per arm, ${CONNECTIONS} connections; load average ${loadAtStart.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end (${os.cpus().length} cores)`);
  console.log('CPU µs per request: all rounds together (median of the rounds)');
  console.log(`| arm | req/s | errors | ${names.map((name) => `${name} µs/req`).join(' | ')} | total µs/req | sequential p50 ms |`);
  console.log(`|---|---|---|${names.map(() => '---|').join('')}---|---|`);
  for (const arm of arms) {
    const perRequest = names.map((name) => ((arm.cpu[name] ?? 0) * 1e6) / arm.requests);
    const total = perRequest.reduce((sum, value) => sum + value, 0);
    const medians = names.map((name) => median(arm.perRound[name] ?? [0]));
    const cells = perRequest.map((value, i) => `${Math.round(value)} (${Math.round(medians[i])})`);
    console.log(`| ${arm.name} | ${Math.round(arm.requests / arm.seconds)} | ${arm.errors} | ${cells.join(' | ')} | ${Math.round(total)} (${Math.round(medians.reduce((a, b) => a + b, 0))}) | ${median(arm.sequential).toFixed(3)} |`);
  }
}

runTool(main);
