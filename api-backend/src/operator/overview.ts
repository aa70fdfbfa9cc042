/**
 * The operator's view of the relay: every proxy by owner hash (state, age, idle time, memory, the
 * desktop's transport), desktops by transport, capacity against PROXY_MAX, this api-backend's
 * recent errors by code, and a per-minute chart of proxies and desktops over the last hour.
 *
 * Nothing here keeps a record of proxies: each overview asks the driver's list and each running
 * proxy's own /status (a few at once, each with a short timeout, so one stuck proxy costs one
 * row, not the page). The chart's points come from looks already made: the manager's idle sweep
 * reads every proxy once a minute (PROXY_CLEANUP_CRON), and every overview is a look too.
 */
import {
  MinuteRing,
  type DesktopCounts,
  type OperatorOverview,
  type OperatorProxy,
  type OperatorSample,
  type ProxyStatus,
} from '@ctll/protocol';
import type { ProxyDriver, ProxyHandle } from '../proxy/driver';
import type { ProxyClient } from '../proxy/proxy-client';
import { mapLimit } from '../proxy/map-limit';
import type { RecentErrors } from './recent-errors';

/** Proxies read at once for one overview. */
const LOOK_CONCURRENCY = 8;
/** A proxy slower than this to say its status shows as unreachable in this overview. */
const STATUS_TIMEOUT_MS = 1_000;

export interface OperatorViewDeps {
  driver: ProxyDriver;
  client: ProxyClient;
  /** PROXY_MAX */
  maxProxies: number;
  errors: RecentErrors;
}

type Counts = Omit<OperatorSample, 'at'>;

export class OperatorView {
  private readonly samples = new MinuteRing<Counts>(() => ({ proxies: 0, desktops: countDesktops([]) }));

  constructor(private readonly deps: OperatorViewDeps) {}

  /** A look at every running proxy: this minute's point of the chart (the latest look in a minute wins). */
  sample(running: number, statuses: readonly ProxyStatus[], at = Date.now()): void {
    Object.assign(this.samples.at(at), { proxies: running, desktops: countDesktops(statuses) });
  }

  async overview(now = Date.now()): Promise<OperatorOverview> {
    const { driver, client } = this.deps;
    const handles = await driver.list();
    const looks = await mapLimit(handles, LOOK_CONCURRENCY, async (handle) => {
      const status = isReachable(handle) ? await client.status(handle.endpoint, STATUS_TIMEOUT_MS).catch(() => undefined) : undefined;
      return { proxy: row(handle, status, driver.name, now), status };
    });
    const statuses = looks.flatMap((look) => (look.status ? [look.status] : []));
    const running = handles.filter((handle) => handle.state === 'running').length;
    this.sample(running, statuses, now);
    return {
      at: new Date(now).toISOString(),
      driver: driver.name,
      capacity: { running, max: this.deps.maxProxies },
      proxies: looks.map((look) => look.proxy).sort((a, b) => a.startedAt.localeCompare(b.startedAt)),
      desktops: countDesktops(statuses),
      errors: this.deps.errors.byCode(now),
      series: this.samples.recent(now).map(({ at, value }) => ({ at: at.toISOString(), ...value })),
    };
  }
}

function isReachable(handle: ProxyHandle): handle is ProxyHandle & { endpoint: NonNullable<ProxyHandle['endpoint']> } {
  return handle.state === 'running' && handle.endpoint !== undefined;
}

function row(handle: ProxyHandle, status: ProxyStatus | undefined, driver: string, now: number): OperatorProxy {
  return {
    owner: handle.ownerHash,
    driver,
    state: handle.state,
    startedAt: handle.createdAt.toISOString(),
    ageMs: Math.max(0, now - handle.createdAt.getTime()),
    idleMs: status ? Math.max(0, now - Date.parse(status.lastActivityAt)) : null,
    memoryBytes: status?.memoryBytes ?? null,
    transport: status?.transport ?? null,
    activeRequests: status?.activeRequests ?? null,
    reachable: status !== undefined || !isReachable(handle),
  };
}

/** Each desktop connection (and healthy zrok share) the proxies list, by transport. */
function countDesktops(statuses: readonly ProxyStatus[]): DesktopCounts {
  const counts: DesktopCounts = { ws: 0, poll: 0, zrok: 0 };
  for (const status of statuses) for (const desktop of status.desktops) counts[desktop.transport] += 1;
  return counts;
}
