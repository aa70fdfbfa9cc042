/**
 * Scenario 4.1, scale across api-backend replicas: the scale scenario's users and load ladder,
 * first against one api-backend, then against two replicas, both behind one real nginx (TLS,
 * production's template) and sharing one PostgreSQL database and one proxy scope (replica-set.ts).
 * The docker driver is what lets replicas share proxies: a process-driver proxy is a child of one
 * api-backend and only that one can reach it, while a container can be reached by any replica.
 *
 * Both arms use the same proxy containers: the first arm's bridges create them, the second arm's
 * bridges reconnect through nginx, which spreads them (and the requests) over both replicas.
 * Each step reads the CPU of every process involved from /proc, as the scale scenario does, so
 * the report can say what bounds each knee.
 */
import type { BenchContext, Cell, Row, Scenario } from '../context';
import { nowMs, round } from '../measure';
import { startFleet } from '../relay';
import { busiest, climb, healthy, kneeOf, kneeText, STEP_COLUMNS, stepRow, type Knee, type LadderLoad, type Step } from '../ladder';
import { startReplicaSet, type ReplicaSet } from '../replica-set';
import { startToRoutable } from './lifecycle';
import { nginxMissing } from '../../../tests/helpers/nginx';

/** Processes that in production run elsewhere (the users' PCs, the model, the web clients). */
const NOT_RELAY = ['bridges (fleet)', 'test server', 'bench (load, TLS)'];

interface Arm {
  replicas: number;
  steps: Step[];
  knee: Knee;
  connectS: number;
  proxies: number;
}

export const replicas: Scenario = {
  id: 'replicas',
  title: '4.1 Scale across api-backend replicas: one against two',
  notInQuick:
    'it creates a proxy container per user and starts nginx and a second api-backend: minutes on a shared 2-core machine, and CI\'s Docker suites already run replicas behind nginx (tests/docker/docker-replicas.test.ts)',
  async run(ctx: BenchContext) {
    const { users, rates, stepMs, tokens, delayMs } = ctx.sizes.scale;
    if (!ctx.dockerRelay) return notRun(`needs the docker driver, which does not run here: ${ctx.dockerUnavailable}`);
    const noNginx = nginxMissing();
    if (noNginx) return notRun(noNginx);
    const { postgres } = await import('../../../tests/helpers/postgres');
    if (!postgres.available) return notRun(postgres.reason);

    const transport = ctx.relays[0]?.transport ?? 'ws';
    const userIds = Array.from({ length: users }, (_, i) => `replica-user-${i}`);
    const body = Buffer.from(JSON.stringify({ model: 'test-model', stream: true, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: tokens } }));
    const load: LadderLoad = { rates, stepMs, body, path: `/api/chat?delayMs=${delayMs}` };
    const set = await startReplicaSet({ scope: `bench-replicas-${process.pid}`, env: { PROXY_SUBNET_POOL: '10.214.0.0/16' } });
    const arms: Arm[] = [];
    let created = { seconds: 0, failures: 0 };
    try {
      for (const count of [1, 2]) {
        while (set.replicas.length < count) await set.grow();
        const nginx = await set.front();
        if (count === 1) created = await createProxies(set, userIds, ctx.log);
        ctx.log(`replicas: ${count} api-backend(s) behind nginx, connecting ${users} bridges (${transport})`);
        const fleet = await startFleet(set.replicas[0], userIds.map((id) => set.replicas[0].token(id)), ctx.llm.url, transport, 8, { server: nginx.url, caFile: nginx.caFile });
        try {
          if (fleet.connected < users) throw new Error(`only ${fleet.connected} of ${users} bridges connected through nginx to ${count} replica(s): ${fleet.errors.join('; ')}`);
          const routes = userIds.map((id) => set.route(id));
          const proxies = set.proxyPids();
          const watched = () => ({
            ...Object.fromEntries(set.replicas.map((replica, i) => [`api-backend ${i + 1}`, [replica.proc.pid]])),
            nginx: set.nginxPids(),
            'streaming-proxies': proxies,
            'bridges (fleet)': [fleet.proc.pid],
            'test server': [ctx.llm.proc.pid],
            'bench (load, TLS)': [process.pid],
          });
          const steps = await climb(load, (i) => routes[i % routes.length], watched, (rate) => ctx.log(`replicas: ${count} replica(s) at ${rate} requests/s for ${stepMs / 1000} s`));
          arms.push({ replicas: count, steps, knee: kneeOf(steps, rates), connectS: round(fleet.ms / 1000, 1), proxies: proxies.length });
        } finally {
          await fleet.close();
        }
      }
    } finally {
      await set.close();
    }

    const rows: Row[] = arms.flatMap((arm) => arm.steps.map((step) => stepRow(`${arm.replicas} replica${arm.replicas > 1 ? 's' : ''}`, step, arm.steps[0])));
    const [one, two] = arms;
    return {
      status: 'ok' as const,
      columns: STEP_COLUMNS,
      rows,
      notes: [
        `${users} users, each with a bridge connected over ${transport} through nginx (HTTPS) and a streaming-proxy container of their own (docker driver, ${one.proxies} containers); api-backend replicas share one PostgreSQL database, one DATA_DIR and one PROXY_SCOPE. The containers were created first (POST /api/proxy/start, ${CREATE_CONCURRENCY} users at a time, ${created.seconds} s for all ${users}${created.failures ? `, ${created.failures} starts failed and were left to the bridges` : ''}), so that a bridge's connect does not wait for the engine; bridges then connected in ${one.connectS} s through one replica and ${two.connectS} s through two.`,
        `The ladder of section 4: generations of ${tokens} tokens ${delayMs} ms apart (~${tokens * delayMs} ms), users round-robin, ${stepMs / 1000} s per step, open loop, sent by the bench over HTTPS to nginx; nginx balances requests and tunnels round-robin over the replicas.`,
        `Knee (last healthy step, as in section 4): one replica ${kneeText(one.knee)} requests/s, two replicas ${kneeText(two.knee)} requests/s.`,
        `What bounds them: ${bound(one)}; ${bound(two)}.`,
        `CPU % is a share of one core (100 = one core; this machine has 2, so 200 is all of it), read from /proc for each process: api-backend per replica, nginx's master and workers, every proxy container's node process, the bridges' fleet, the test server and the bench itself (the web client, which also does the TLS the web browsers would). Postgres and dockerd are not counted.`,
        `How this carries to two hosts: here both replicas share the same 2 cores with nginx, the proxies and the load, so a second replica only helps as far as one api-backend's single event loop was the limit; once the cores are full, a second replica divides the same CPU. ${carry(one, two)}`,
      ],
      summary: {
        users,
        proxies: one.proxies,
        containersCreatedS: created.seconds,
        oneReplicaKneeRps: one.knee.rate,
        oneReplicaKneeAboveLadder: one.knee.beyond,
        twoReplicasKneeRps: two.knee.rate,
        twoReplicasKneeAboveLadder: two.knee.beyond,
        oneReplicaRelayCpuMsPerRequest: relayCpuMsPerRequest(lastHealthy(one)),
        twoReplicasRelayCpuMsPerRequest: relayCpuMsPerRequest(lastHealthy(two)),
        totalErrors: arms.reduce((sum, arm) => sum + arm.steps.reduce((s, step) => s + step.errors, 0), 0),
      },
    };
  },
};

/** Users whose containers are created at once: more only queue in the engine. */
const CREATE_CONCURRENCY = 4;

/** Creates every user's proxy container through the first replica, a few at a time. */
async function createProxies(set: ReplicaSet, userIds: string[], log: (message: string) => void): Promise<{ seconds: number; failures: number }> {
  log(`replicas: creating ${userIds.length} proxy containers, ${CREATE_CONCURRENCY} at a time`);
  const began = nowMs();
  let next = 0;
  let failures = 0;
  const worker = async () => {
    while (next < userIds.length) {
      const timed = await startToRoutable(set.replicas[0], userIds[next++]);
      if (timed.error !== undefined) failures += 1;
    }
  };
  await Promise.all(Array.from({ length: CREATE_CONCURRENCY }, worker));
  return { seconds: round((nowMs() - began) / 1000, 1), failures };
}

function notRun(reason: string) {
  return { status: 'skipped' as const, reason, columns: [], rows: [], notes: [] };
}

function lastHealthy(arm: Arm): Step | undefined {
  return arm.steps.filter((step) => healthy(step, arm.steps[0])).pop();
}

function totalCpu(step: Step): number {
  return Object.values(step.cpu).reduce((sum, pct) => sum + pct, 0);
}

/** CPU the relay's own processes (api-backends, nginx, proxies) spent per request at a step, in ms. */
function relayCpuMsPerRequest(step: Step | undefined): Cell {
  if (!step || step.throughput <= 0) return null;
  const relay = Object.entries(step.cpu)
    .filter(([name]) => !NOT_RELAY.includes(name))
    .reduce((sum, [, pct]) => sum + pct, 0);
  return round((relay * 10) / step.throughput, 2);
}

/** The step past the knee (or the top step), with the CPU it used: what stopped the ladder. */
function bound(arm: Arm): string {
  const label = `${arm.replicas} replica${arm.replicas > 1 ? 's' : ''}`;
  const past = arm.knee.beyond ? undefined : arm.steps[arm.steps.length - 1];
  const step = past ?? arm.steps[arm.steps.length - 1];
  const what = past ? `at ${past.rate} requests/s (past the knee: ${reason(past, arm.steps[0])})` : `at the top step, ${step.rate} requests/s, still healthy`;
  return `${label} ${what}: all processes together used ${totalCpu(step)} % of the 200 %, the busiest being ${busiest(step)}`;
}

function reason(step: Step, first: Step): string {
  if (step.errors > step.issued * 0.01) return `${step.errors} errors, first: ${step.firstError}`;
  if (step.throughput < step.rate * 0.9) return `only ${round(step.throughput, 1)} requests/s completed`;
  return `p99 ${step.p99} ms against ${first.p99} ms at the first step`;
}

/** A projection from CPU per request at the knee: what a host's 2 cores would carry for the relay alone. */
function carry(one: Arm, two: Arm): string {
  const perRequest = relayCpuMsPerRequest(lastHealthy(two) ?? lastHealthy(one));
  if (typeof perRequest !== 'number' || perRequest <= 0) return 'No healthy step to project from.';
  const perHost = Math.round(2000 / perRequest);
  return (
    `At the last healthy step the relay's own processes (api-backends, nginx, proxies) spent ${perRequest} ms of CPU per request; 2 cores give 2,000 ms of CPU per second, so a 2-core host running only a replica and its share of the proxies would top out near ${perHost} requests/s, ` +
    `and two such hosts near ${2 * perHost} (nginx stays on one host and its share, ${nginxShare(two)}, does not split). Here the bridges, the test server and the web client (which run elsewhere in production) took the rest of the same cores, which is why both knees sit below that.`
  );
}

function nginxShare(arm: Arm): string {
  const step = lastHealthy(arm);
  return step ? `${step.cpu.nginx ?? 0} % of a core at ${step.rate} requests/s` : 'not measured';
}
