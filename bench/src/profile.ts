/**
 * `npm run bench -- --profile`: where the relay's CPU goes. Runs api-backend and the bridge with
 * V8's `--cpu-prof`, the streaming-proxy through a stand-in that profiles itself (children/
 * profiled-proxy.ts; the process driver gives proxies a fixed environment, so NODE_OPTIONS would
 * not reach it), puts the small-request load, a few token streams and a 100 MiB download through
 * them, and prints each process's top functions by self time. The .cpuprofile files stay in
 * bench/.tmp/profiles/ for a flame graph (Chrome DevTools, speedscope).
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { agentFor, closedLoop, send } from './http-client';
import { sleep, waitUntil } from './measure';
import { BUILD_DIR, directRoute, relayRoute, startBridgeProcess, startLlm, startRelayProcess, TMP_DIR } from './relay';

const PROFILE_DIR = path.join(TMP_DIR, 'profiles');

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** `bulk` is `download` and `upload` together. */
export type ProfileLoad = 'small' | 'streaming' | 'bulk' | 'download' | 'upload';

export async function runProfile(
  log: (message: string) => void,
  loads: ReadonlySet<ProfileLoad> = new Set(['small', 'streaming', 'bulk']),
  transport: 'ws' | 'poll' = 'ws',
): Promise<void> {
  fs.rmSync(PROFILE_DIR, { recursive: true, force: true });
  fs.mkdirSync(PROFILE_DIR, { recursive: true });
  const llm = await startLlm();
  const relay = await startRelayProcess({
    driver: 'process',
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, '--cpu-prof-name=api-backend.cpuprofile', '--cpu-prof-interval=200'],
    proxyScript: path.join(BUILD_DIR, 'profiled-proxy.cjs'),
  });
  const user = 'profile-user';
  const bridge = await startBridgeProcess(relay, user, llm.url, transport, ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, '--cpu-prof-name=bridge.cpuprofile', '--cpu-prof-interval=200']);
  const route = relayRoute(relay, user, `relay ${transport}/process`);
  try {
    const body = randomBytes(1024);
    if (loads.has('small')) {
      log('profile: 8 s of small requests, 32 connections');
      const spec = () => ({ method: 'POST', path: '/echo/whole', body, headers: { 'content-type': 'application/octet-stream' } });
      const load = await closedLoop(route, spec, { connections: 32, durationMs: 8000, warmupMs: 500, expectBytes: 1024 });
      const direct = await closedLoop(directRoute(llm), spec, { connections: 32, durationMs: 3000, warmupMs: 300, expectBytes: 1024 });
      log(`profile: relay ${Math.round(load.rps)} req/s (${load.errors} errors), direct ${Math.round(direct.rps)} req/s`);
    }
    const agent = agentFor(1);
    if (loads.has('streaming')) {
      log('profile: 5 token streams');
      const chat = Buffer.from(JSON.stringify({ model: 'm', stream: true, options: { num_predict: 200 } }));
      for (let i = 0; i < 5; i++) await send(route, agent, { method: 'POST', path: '/api/chat?delayMs=5', body: chat });
    }
    if (loads.has('bulk') || loads.has('download')) {
      log('profile: 100 MiB download');
      await send(route, agent, { method: 'GET', path: `/blob?n=${100 * 1024 * 1024}`, timeoutMs: 120_000 });
    }
    if (loads.has('bulk') || loads.has('upload')) {
      log('profile: 100 MiB upload');
      await send(route, agent, { method: 'POST', path: '/discard', stream: { block: randomBytes(65536), bytes: 100 * 1024 * 1024 }, timeoutMs: 120_000 });
    }
    agent.destroy();
  } finally {
    const proxyPid = relay.proxyPid(user);
    if (proxyPid) {
      process.kill(proxyPid, 'SIGUSR2');
      await waitUntil(() => (fs.readdirSync(PROFILE_DIR).some((f) => f.startsWith('streaming-proxy')) ? true : undefined), 15_000, 'the proxy profile').catch(() => undefined);
    }
    await bridge.close();
    await relay.close();
    await llm.proc.stop();
    await sleep(200);
  }
  const report: string[] = [];
  for (const file of fs.readdirSync(PROFILE_DIR).filter((f) => f.endsWith('.cpuprofile'))) {
    report.push(summarise(path.join(PROFILE_DIR, file)));
  }
  const text = report.join('\n\n');
  fs.writeFileSync(path.join(PROFILE_DIR, 'summary.txt'), `${text}\n`);
  process.stdout.write(`\n${text}\n\nprofiles and summary in ${path.relative(process.cwd(), PROFILE_DIR)}/\n`);
}

/** Top functions by self time, and self time by package, of one .cpuprofile. */
function summarise(file: string): string {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; startTime: number; endTime: number };
  const hits = new Map<number, number>();
  for (const sample of profile.samples) hits.set(sample, (hits.get(sample) ?? 0) + 1);
  const total = profile.samples.length || 1;
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let idle = 0;
  for (const node of profile.nodes) {
    const count = hits.get(node.id) ?? node.hitCount ?? 0;
    if (count === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') idle += count;
    if (functionName === '(idle)') continue;
    const place = placeOf(url, functionName);
    const key = `${functionName || '(anonymous)'}  ${place}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + count);
    byPlace.set(place, (byPlace.get(place) ?? 0) + count);
  }
  const busy = Math.max(1, total - idle);
  // Shares of the time the process was busy (idle samples left out), so processes compare.
  const pct = (count: number) => `${((count / busy) * 100).toFixed(1).padStart(5)} %`;
  const top = [...byFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
  const places = [...byPlace.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
  return [
    `== ${path.basename(file)}: ${total} samples over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, busy ${((busy / total) * 100).toFixed(1)} %`,
    'self time by place (share of busy time):',
    ...places.map(([place, count]) => `  ${pct(count)}  ${place}`),
    'top functions by self time:',
    ...top.map(([key, count]) => `  ${pct(count)}  ${key}`),
  ].join('\n');
}

function placeOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return url;
  return path.basename(url.replace(/^file:\/\//, ''));
}
