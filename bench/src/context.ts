/**
 * What a scenario gets: the sizes for this mode, the routes to measure (the direct call first,
 * then our relay per transport × driver, then the peers), and the shape of what it returns.
 * Scenarios never start shared processes themselves; main.ts owns those and their teardown.
 */
import type { Route } from './http-client';
import type { LlmProcess, RelayProcess } from './relay';
import type { SshPeer } from './peers/ssh';
import type { LocaltunnelPeer } from './peers/localtunnel';

export interface Sizes {
  /** `spaced` requests per route, one every `spacingMs` across all routes in turn: warm code, idle processes. */
  small: { latencyRequests: number; rounds: number; warmup: number; throughputMs: number; connections: number; spaced: number; spacingMs: number };
  streaming: { streams: number; tokens: number; delayMs: number };
  bulk: { bytes: number; repetitions: number };
  scale: { users: number; rates: number[]; stepMs: number; tokens: number; delayMs: number };
  polling: { samples: number };
  lifecycle: { sequential: number; concurrent: number; capacityMax: number };
  idle: { tunnels: number; peerTunnels: number };
  /** How many stalled streams to open at once, one measurement per count. */
  streams: { counts: number[] };
}

export const FULL: Sizes = {
  small: { latencyRequests: 2000, rounds: 4, warmup: 200, throughputMs: 6000, connections: 32, spaced: 100, spacingMs: 100 },
  streaming: { streams: 5, tokens: 200, delayMs: 5 },
  bulk: { bytes: 100 * 1024 * 1024, repetitions: 2 },
  // 17/s is 1,000 requests per minute, the load one busy user's apps make; the ladder climbs until errors or latency do.
  scale: { users: 100, rates: [17, 50, 100, 200, 400, 800, 1200, 1600], stepMs: 5000, tokens: 10, delayMs: 10 },
  polling: { samples: 300 },
  lifecycle: { sequential: 20, concurrent: 20, capacityMax: 300 },
  idle: { tunnels: 200, peerTunnels: 50 },
  streams: { counts: [10, 50, 100] },
};

/** Every scenario once, small: CI runs this so the bench never rots (figures are not checked). */
export const QUICK: Sizes = {
  small: { latencyRequests: 100, rounds: 2, warmup: 20, throughputMs: 600, connections: 32, spaced: 10, spacingMs: 100 },
  streaming: { streams: 1, tokens: 50, delayMs: 5 },
  bulk: { bytes: 8 * 1024 * 1024, repetitions: 1 },
  scale: { users: 10, rates: [17, 50], stepMs: 1000, tokens: 10, delayMs: 10 },
  polling: { samples: 30 },
  lifecycle: { sequential: 3, concurrent: 5, capacityMax: 5 },
  idle: { tunnels: 10, peerTunnels: 3 },
  streams: { counts: [10] },
};

/** One way through our relay: a transport on a driver, with its bridge running. */
export interface RelayRoute {
  route: Route;
  transport: string;
  driver: string;
  relay: RelayProcess;
  userId: string;
}

export interface RouteStatus {
  id: string;
  kind: 'direct' | 'relay' | 'peer';
  status: 'measured' | 'unavailable';
  reason?: string;
}

export interface BenchContext {
  quick: boolean;
  sizes: Sizes;
  llm: LlmProcess;
  direct: Route;
  relays: RelayRoute[];
  peers: Route[];
  ssh?: SshPeer;
  localtunnel?: LocaltunnelPeer;
  /** The api-backend with the process driver (always there). */
  processRelay: RelayProcess;
  /** The api-backend with the docker driver, when it runs here. */
  dockerRelay?: RelayProcess;
  dockerUnavailable?: string;
  routeStatus: RouteStatus[];
  log(message: string): void;
}

export type Cell = number | string | boolean | null;
export type Row = Record<string, Cell>;

export interface ScenarioResult {
  id: string;
  title: string;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  /** Column order for tables, with units in the names. */
  columns: string[];
  rows: Row[];
  notes: string[];
  /** Headline figures the targets and the report read (named, so they survive column changes). */
  summary?: Record<string, Cell>;
  durationS?: number;
}

export interface Scenario {
  id: string;
  title: string;
  /** Why `--quick` leaves this scenario out (`--only` still runs it); unset: it runs in `--quick`. */
  notInQuick?: string;
  run(ctx: BenchContext): Promise<Omit<ScenarioResult, 'id' | 'title' | 'durationS'>>;
}

/** Every route measured in a scenario, direct first. */
export function allRoutes(ctx: BenchContext): Route[] {
  return [ctx.direct, ...ctx.relays.map((r) => r.route), ...ctx.peers];
}

/**
 * Runs `measure` with the relay of each proxy driver, process first; a driver that does not run
 * on this machine gets one row saying why instead.
 */
export async function forEachDriver(ctx: BenchContext, rows: Row[], measure: (driver: 'process' | 'docker', relay: RelayProcess) => Promise<void>): Promise<void> {
  const drivers: Array<['process' | 'docker', RelayProcess | undefined, string | undefined]> = [
    ['process', ctx.processRelay, undefined],
    ['docker', ctx.dockerRelay, ctx.dockerUnavailable],
  ];
  for (const [driver, relay, unavailable] of drivers) {
    if (relay) await measure(driver, relay);
    else rows.push({ driver, measure: 'all', value: null, note: `not measured: ${unavailable}` });
  }
}
