/**
 * The bench's composition root. It starts what every scenario shares (the test LLM server, an
 * api-backend per proxy driver with a bridge per transport, the peers), runs the scenarios in
 * order, checks the targets, prints the tables and writes results.json and RESULTS.md. Whatever
 * cannot run here (a transport not built yet, no Docker engine, no sshd) is listed with the reason
 * instead of failing the run. Every process it started is ended on the way out, also on failure.
 *
 *   --quick         every scenario once at a small size (CI); writes to bench/.tmp/
 *   --only a,b      only these scenarios (small, streaming, bulk, scale, replicas, polling, lifecycle,
 *                   swarmstart, footprint, idle, streams)
 *   --profile       CPU-profile the relay's processes under load instead (see profile.ts);
 *                   with --only small,streaming,bulk (or download, upload) to pick the loads
 *   --users <n>     users (bridges) of the scale scenarios (scale, replicas) instead of the mode's
 *                   count, for a machine where creating 100 proxy containers takes too long
 *   --out <dir>     where to write results.json and RESULTS.md
 *   --drivers a,b   only these proxy drivers (process, docker); default both
 *   --render        only regenerate RESULTS.md from results.json (e.g. after editing hotspots.json)
 *   --merge <dir>   with --render: first take the scenarios of the run in <dir> (e.g. an --only run
 *                   written with --out) into results.json, each noted as measured separately
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { TRANSPORTS } from '../../tests/helpers/matrix';
import { FULL, QUICK, type Sizes, type BenchContext, type RelayRoute, type RouteStatus, type Scenario, type ScenarioResult } from './context';
import { nowMs } from './measure';
import { stopAll } from './procs';
import { directRoute, relayRoute, ROOT, startBridgeProcess, startLlm, startRelayProcess, TMP_DIR, type BridgeProcess, type DriverName, type RelayProcess } from './relay';
import { sshUnavailable, startSshPeer, type SshPeer } from './peers/ssh';
import { prepareLocaltunnel, startLocaltunnelPeer, type LocaltunnelPeer } from './peers/localtunnel';
import { consoleTable, consoleTargets, markdown } from './report';
import { machine, mergeScenarios, writeResults, type Results } from './results';
import { evaluateTargets } from './targets';
import { runProfile, type ProfileLoad } from './profile';
import { small } from './scenarios/small';
import { streaming } from './scenarios/streaming';
import { bulk } from './scenarios/bulk';
import { scale } from './scenarios/scale';
import { polling } from './scenarios/polling';
import { lifecycle } from './scenarios/lifecycle';
import { footprint } from './scenarios/footprint';
import { idle } from './scenarios/idle';
import { streams } from './scenarios/streams';
import { replicas } from './scenarios/replicas';
import { swarmStart } from './scenarios/swarm-start';

/** The scenarios, in the order they run. Adding one is one line here. */
const SCENARIOS: Scenario[] = [small, streaming, bulk, polling, lifecycle, swarmStart, footprint, idle, streams, scale, replicas];

/** Drivers the relay routes cover; each × every transport in tests/helpers/matrix.ts. */
const DRIVERS: DriverName[] = ['process', 'docker'];

/** api-backend runs PROXY_IMAGE when the environment names one (the bench passes its environment on). */
const DOCKER_IMAGE = process.env.PROXY_IMAGE ?? 'ctll/streaming-proxy:latest';

/**
 * The bench's docker proxies get a scope and a subnet pool of their own, so that another
 * api-backend on the same engine (a test suite running meanwhile) neither adopts nor removes
 * them, and the two never race for the same subnet.
 */
const DOCKER_ENV = { PROXY_SCOPE: `bench-${process.pid}`, PROXY_SUBNET_POOL: '10.213.0.0/16' };

const USAGE = `usage: npm run bench -- [options]   (or node bench/run.mjs [options]; run \`npm run build\` first)
  --quick        smaller sizes; with --quick or --only, results go to bench/.tmp instead of bench/
  --only a,b     only these scenarios (ids as in bench/src/scenarios), or with --profile these loads
  --profile      CPU profiles of the relay's processes instead of the scenarios
  --transport t  with --profile: the bridge's transport, ws (default) or poll
  --render       rewrite RESULTS.md from an existing results.json, measuring nothing
  --merge DIR    with --render: first take the scenarios of an --only run written to DIR into results.json
  --users N      users (bridges) of the scale scenarios (scale, replicas)
  --out DIR      where results.json and RESULTS.md go
  --drivers a,b  only these proxy drivers (process, docker); default both
  -h, --help     this text
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      only: { type: 'string' },
      profile: { type: 'boolean' },
      transport: { type: 'string' },
      out: { type: 'string' },
      render: { type: 'boolean' },
      drivers: { type: 'string' },
      users: { type: 'string' },
      merge: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const began = nowMs();
  const loadAtStart = Math.round(os.loadavg()[0] * 10) / 10;
  const log = (message: string) => process.stdout.write(`[${((nowMs() - began) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);

  if (values.profile) {
    const loads = values.only ? new Set(values.only.split(',').map((s) => s.trim()) as ProfileLoad[]) : undefined;
    const transport = values.transport ?? 'ws';
    if (transport !== 'ws' && transport !== 'poll') throw new Error(`--transport is ws or poll, not ${transport}`);
    await runProfile(log, loads, transport);
    return;
  }

  if (values.render) {
    // Regenerates RESULTS.md (and the targets) from a results.json without measuring anything.
    const dir = values.out ? path.resolve(values.out) : values.quick ? TMP_DIR : path.join(ROOT, 'bench');
    const results = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')) as Results;
    if (values.merge) {
      const from = JSON.parse(fs.readFileSync(path.join(path.resolve(values.merge), 'results.json'), 'utf8')) as Results;
      log(`merged ${mergeScenarios(results, from).join(', ')} from ${values.merge}`);
    }
    results.targets = evaluateTargets(results.scenarios, results.routes);
    const written = writeResults(dir, results, markdown(results, ROOT));
    log(`rendered ${path.relative(ROOT, written.md)} from ${path.relative(ROOT, written.json)}`);
    return;
  }

  const quick = values.quick ?? false;
  const only = values.only ? new Set(values.only.split(',').map((s) => s.trim())) : undefined;
  const unknown = only ? [...only].filter((id) => !SCENARIOS.some((s) => s.id === id)) : [];
  if (unknown.length > 0) throw new Error(`--only: unknown scenario(s) ${unknown.join(', ')} (have ${SCENARIOS.map((s) => s.id).join(', ')})`);
  const outDir = values.out ? path.resolve(values.out) : quick || only ? TMP_DIR : path.join(ROOT, 'bench');

  log(`bench ${quick ? '--quick' : 'full'} run; results go to ${path.relative(ROOT, outDir) || '.'}/`);
  const closers: Array<() => Promise<void>> = [];
  const routeStatus: RouteStatus[] = [{ id: 'direct', kind: 'direct', status: 'measured' }];
  try {
    const llm = await startLlm();
    closers.push(() => llm.proc.stop());
    log(`test LLM server on ${llm.url}`);

    const relays: RelayRoute[] = [];
    const relayByDriver = new Map<DriverName, RelayProcess>();
    let dockerUnavailable: string | undefined;
    const drivers = values.drivers ? (values.drivers.split(',').map((d) => d.trim()) as DriverName[]) : DRIVERS;
    for (const driver of drivers) {
      const why = driver === 'docker' ? dockerMissing() : undefined;
      let relay: RelayProcess | undefined;
      if (!why) {
        try {
          relay = await startRelayProcess({ driver, env: driver === 'docker' ? DOCKER_ENV : {} });
          relayByDriver.set(driver, relay);
          closers.push(() => relay!.close());
          // Containers outlive api-backend on purpose; the bench's have no next start to adopt them.
          if (driver === 'docker') closers.push(async () => (await import('../../tests/docker/support')).removeScope(DOCKER_ENV.PROXY_SCOPE));
        } catch (error) {
          dockerUnavailable = `api-backend with PROXY_DRIVER=${driver} did not start: ${firstLine((error as Error).message)}`;
          log(dockerUnavailable);
        }
      } else {
        dockerUnavailable = why;
      }
      for (const transport of TRANSPORTS) {
        const id = `relay ${transport}/${driver}`;
        if (!relay) {
          routeStatus.push({ id, kind: 'relay', status: 'unavailable', reason: dockerUnavailable ?? 'relay did not start' });
          continue;
        }
        const userId = `bench-${transport}-${driver}`;
        let bridge: BridgeProcess;
        try {
          bridge = await startBridgeProcess(relay, userId, llm.url, transport);
        } catch (error) {
          routeStatus.push({ id, kind: 'relay', status: 'unavailable', reason: `the ${transport} bridge did not connect: ${firstLine((error as Error).message)}` });
          continue;
        }
        closers.push(() => bridge.close());
        relays.push({ route: relayRoute(relay, userId, id, () => ({ bridge: bridge.proc.pid })), transport, driver, relay, userId });
        routeStatus.push({ id, kind: 'relay', status: 'measured' });
        log(`${id}: bridge connected`);
      }
    }
    // Transports the bridge does not offer yet, for the record.
    for (const transport of ['ws', 'poll'].filter((t) => !(TRANSPORTS as string[]).includes(t))) {
      routeStatus.push({ id: `relay ${transport}/process`, kind: 'relay', status: 'unavailable', reason: `tests/helpers/matrix.ts does not list the ${transport} transport yet (the bridge side is being built)` });
    }

    let ssh: SshPeer | undefined;
    const sshWhy = sshUnavailable();
    if (sshWhy) {
      routeStatus.push({ id: 'ssh -R', kind: 'peer', status: 'unavailable', reason: sshWhy });
    } else {
      try {
        ssh = await startSshPeer(llm.port);
        closers.push(() => ssh!.close());
        routeStatus.push({ id: 'ssh -R', kind: 'peer', status: 'measured' });
        log('ssh -R: throwaway sshd and reverse tunnel up');
      } catch (error) {
        routeStatus.push({ id: 'ssh -R', kind: 'peer', status: 'unavailable', reason: firstLine((error as Error).message) });
      }
    }

    let lt: LocaltunnelPeer | undefined;
    const ltWhy = prepareLocaltunnel();
    if (ltWhy) {
      routeStatus.push({ id: 'localtunnel', kind: 'peer', status: 'unavailable', reason: ltWhy });
    } else {
      try {
        lt = await startLocaltunnelPeer(llm.port);
        closers.push(() => lt!.close());
        routeStatus.push({ id: 'localtunnel', kind: 'peer', status: 'measured' });
        log('localtunnel: server and client up');
      } catch (error) {
        routeStatus.push({ id: 'localtunnel', kind: 'peer', status: 'unavailable', reason: firstLine((error as Error).message) });
      }
    }

    const ctx: BenchContext = {
      quick,
      sizes: withUsers(quick ? QUICK : FULL, values.users),
      llm,
      direct: directRoute(llm),
      relays,
      peers: [ssh?.route, lt?.route].filter((route) => route !== undefined),
      ssh,
      localtunnel: lt,
      processRelay: relayByDriver.get('process')!,
      dockerRelay: relayByDriver.get('docker'),
      dockerUnavailable,
      routeStatus,
      log,
    };
    if (!ctx.processRelay) throw new Error('the api-backend with the process driver did not start');

    const scenarios: ScenarioResult[] = [];
    for (const scenario of SCENARIOS) {
      if (only && !only.has(scenario.id)) continue;
      if (quick && scenario.notInQuick && !only) {
        scenarios.push({ id: scenario.id, title: scenario.title, status: 'skipped', reason: `not in --quick: ${scenario.notInQuick}`, columns: [], rows: [], notes: [] });
        continue;
      }
      const t0 = nowMs();
      log(`--- ${scenario.title}`);
      let result: ScenarioResult;
      try {
        result = { id: scenario.id, title: scenario.title, ...(await scenario.run(ctx)) };
      } catch (error) {
        result = { id: scenario.id, title: scenario.title, status: 'failed', reason: (error as Error).stack ?? String(error), columns: [], rows: [], notes: [] };
      }
      result.durationS = Math.round((nowMs() - t0) / 100) / 10;
      scenarios.push(result);
      process.stdout.write(`\n${consoleTable(result)}\n\n`);
    }

    const targets = evaluateTargets(scenarios, routeStatus);
    const results: Results = {
      schema: 1,
      mode: quick ? 'quick' : 'full',
      date: new Date().toISOString(),
      durationS: Math.round((nowMs() - began) / 1000),
      args: process.argv.slice(2).join(' '),
      machine: { ...machine(ROOT), loadAverage: { start: loadAtStart, end: Math.round(os.loadavg()[0] * 10) / 10 } },
      routes: routeStatus,
      scenarios,
      targets,
    };
    const written = writeResults(outDir, results, markdown(results, ROOT));
    process.stdout.write(`${consoleTargets(targets)}\n\n`);
    log(`wrote ${path.relative(ROOT, written.json)} and ${path.relative(ROOT, written.md)}`);
    const failed = scenarios.filter((s) => s.status === 'failed');
    if (failed.length > 0) {
      process.stderr.write(`bench: ${failed.length} scenario(s) failed: ${failed.map((s) => `${s.id}: ${firstLine(s.reason ?? '')}`).join('; ')}\n`);
      process.exitCode = 1;
    }
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await stopAll();
  }
}

/** Why the docker driver cannot be measured here, or undefined when it can be tried. */
function dockerMissing(): string | undefined {
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'pipe', timeout: 15_000 });
  } catch {
    return 'no Docker engine answers here (`docker info` failed)';
  }
  try {
    execFileSync('docker', ['image', 'inspect', DOCKER_IMAGE], { stdio: 'pipe', timeout: 15_000 });
  } catch {
    return `the image ${DOCKER_IMAGE} is missing (npm run docker:build)`;
  }
  return undefined;
}

function withUsers(sizes: Sizes, users: string | undefined): Sizes {
  if (users === undefined) return sizes;
  const count = Number(users);
  if (!Number.isInteger(count) || count < 1) throw new Error(`--users: expected a positive whole number, got ${users}`);
  return { ...sizes, scale: { ...sizes.scale, users: count } };
}

function firstLine(text: string): string {
  return text.split('\n').find((line) => line.trim())?.trim() ?? text;
}

main().catch(async (error: unknown) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  await stopAll();
  process.exit(1);
});
