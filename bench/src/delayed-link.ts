/**
 * Bulk bodies over a bridge link with a round trip in it, which the loopback rows of section 3
 * never have: a desktop's link to the relay crosses the internet. Each bridge reaches the relay
 * through a TCP relay in this process that holds every chunk for half the round trip in each
 * direction (no bandwidth cap, no loss: latency only); the web client calls the relay directly.
 * Both transports, and optionally two builds of the bridge (A, e.g. a copy of the previous build,
 * and B, this one), each on a user and proxy of its own behind one api-backend (process driver).
 * Where Debian's OpenSSH is installed, an `ssh -R` tunnel whose client reaches sshd through the
 * same kind of delayed link runs beside them, as the figure to beat.
 * Rounds alternate the arms' order, so the machine's noise falls on all of them alike.
 *
 *   npm run build && node bench/run.mjs --delayed [--rtt 20] [--mib 32] [--rounds 3] [--base-bridge bridge/dist/cli-base.js]
 */
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { agentFor, send, type Route } from './http-client';
import { runTool, stopAll } from './procs';
import { median } from './measure';
import { relayRoute, startBridgeProcess, startLlm, startRelayProcess, type BridgeProcess } from './relay';
import { sshUnavailable, startSshPeer, type SshPeer } from './peers/ssh';

const MIB = 1024 * 1024;

interface Arm {
  /** Which bridge bundle (A, B or this build), or the peer. */
  build: string;
  /** The relay's transport; undefined for the peer. */
  transport?: 'ws' | 'poll';
  /** Our bridge; undefined for the peer. */
  bridge?: BridgeProcess;
  route: Route;
  /** MiB/s of each round, per direction. */
  upload: number[];
  download: number[];
}

/** Forwards `from` to `to`, each chunk `delayMs` after it arrived, in order. */
function delayed(from: net.Socket, to: net.Socket, delayMs: number): void {
  const queue: Array<{ at: number; chunk: Buffer | null }> = [];
  let timer: NodeJS.Timeout | undefined;
  const pump = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0].at <= now) {
      const { chunk } = queue.shift()!;
      if (chunk === null) to.end();
      else to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(pump, queue[0].at - now);
  };
  const push = (chunk: Buffer | null) => {
    queue.push({ at: performance.now() + delayMs, chunk });
    timer ??= setTimeout(pump, delayMs);
  };
  from.on('data', (chunk: Buffer) => push(chunk));
  from.on('end', () => push(null));
  from.on('close', () => setTimeout(() => to.destroy(), delayMs + 5));
  from.on('error', () => to.destroy());
}

/** A listener on 127.0.0.1 whose connections reach `port` with `rttMs` of round trip. */
async function delayedLink(port: number, rttMs: number): Promise<{ url: string; port: number; close(): void }> {
  const server = net.createServer((inbound) => {
    inbound.setNoDelay(true);
    const outbound = net.connect(port, '127.0.0.1');
    outbound.setNoDelay(true);
    delayed(inbound, outbound, rttMs / 2);
    delayed(outbound, inbound, rttMs / 2);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: own } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${own}`, port: own, close: () => server.close() };
}

async function transfer(route: Route, direction: 'upload' | 'download', bytes: number): Promise<number> {
  const agent = agentFor(1);
  try {
    const outcome =
      direction === 'download'
        ? await send(route, agent, { method: 'GET', path: `/blob?n=${bytes}`, timeoutMs: 300_000 })
        : await send(route, agent, { method: 'POST', path: '/discard', stream: { block: randomBytes(64 * 1024), bytes }, timeoutMs: 300_000 });
    if (outcome.error || outcome.status !== 200) throw new Error(`${route.id} ${direction}: ${outcome.error ?? `status ${outcome.status}`}`);
    return bytes / MIB / ((outcome.endMs - outcome.startMs) / 1000);
  } finally {
    agent.destroy();
  }
}

async function main(): Promise<void> {
  const { values: option } = parseArgs({
    options: {
      rtt: { type: 'string', default: '20' },
      mib: { type: 'string', default: '32' },
      rounds: { type: 'string', default: '3' },
      'base-bridge': { type: 'string', default: '' },
    },
  });
  const rttMs = Number(option.rtt);
  const bytes = Number(option.mib) * MIB;
  const rounds = Number(option.rounds);
  const builds = [
    ...(option['base-bridge'] ? [{ name: 'A (base)', cli: path.resolve(option['base-bridge']) }] : []),
    { name: option['base-bridge'] ? 'B (this build)' : 'this build', cli: undefined },
  ];
  const llm = await startLlm();
  const relay = await startRelayProcess({ driver: 'process' });
  const link = await delayedLink(relay.port, rttMs);
  const arms: Arm[] = [];
  const links = [link];
  let ssh: SshPeer | undefined;
  try {
    const noSsh = sshUnavailable();
    if (noSsh) console.log(`  no ssh -R arm: ${noSsh}`);
    else {
      ssh = await startSshPeer(llm.port, async (sshdPort) => {
        const sshLink = await delayedLink(sshdPort, rttMs);
        links.push(sshLink);
        return sshLink.port;
      });
      arms.push({ build: 'ssh -R', route: ssh.route, upload: [], download: [] });
    }
    for (const build of builds) {
      for (const transport of ['ws', 'poll'] as const) {
        const userId = `delayed-${arms.length}`;
        const bridge = await startBridgeProcess({ ...relay, url: link.url }, userId, llm.url, transport, [], build.cli);
        arms.push({ build: build.name, transport, bridge, route: relayRoute(relay, userId, `${build.name} ${transport}`), upload: [], download: [] });
      }
    }
    // Warm-up, uncounted: each path's first bytes compile code and grow buffers.
    for (const arm of arms) {
      await transfer(arm.route, 'download', 4 * MIB);
      await transfer(arm.route, 'upload', 4 * MIB);
    }
    for (let r = 0; r < rounds; r++) {
      for (const arm of r % 2 === 0 ? arms : [...arms].reverse()) {
        for (const direction of ['download', 'upload'] as const) {
          const rate = await transfer(arm.route, direction, bytes);
          arm[direction].push(rate);
          console.log(`  round ${r + 1} ${arm.route.id} ${direction}: ${rate.toFixed(1)} MiB/s`);
        }
      }
    }
  } finally {
    for (const arm of arms) await arm.bridge?.close();
    await ssh?.close();
    for (const each of links) each.close();
    await relay.close();
    await llm.proc.stop();
    await stopAll();
  }
  console.log(`\n${option.mib} MiB each way, ${rounds} rounds, bridge link round trip ${rttMs} ms; median MiB/s (rounds)`);
  console.log('| arm | download | upload |');
  console.log('|---|---|---|');
  for (const arm of arms) {
    const cell = (rates: number[]) => `${median(rates).toFixed(1)} (${rates.map((rate) => rate.toFixed(0)).join(', ')})`;
    console.log(`| ${arm.route.id} | ${cell(arm.download)} | ${cell(arm.upload)} |`);
  }
  for (const build of builds) {
    const [ws, poll] = ['ws', 'poll'].map((transport) => arms.find((arm) => arm.build === build.name && arm.transport === transport)!);
    const slower = (direction: 'upload' | 'download') => (median(ws[direction]) / median(poll[direction])).toFixed(2);
    console.log(`${build.name}: the WebSocket moves ${slower('download')}x the poll transport's bytes down, ${slower('upload')}x up`);
    const peer = arms.find((arm) => arm.build === 'ssh -R');
    if (!peer) continue;
    const against = (direction: 'upload' | 'download') => (median(ws[direction]) / median(peer[direction])).toFixed(2);
    console.log(`${build.name}: the WebSocket moves ${against('download')}x ssh -R's bytes down, ${against('upload')}x up`);
  }
}

runTool(main);
