/**
 * A user's tunnel health as the web console shows it (protocol's TunnelHealth), read from their
 * proxy's status; never starts a proxy: none running means no desktop.
 */
import type { TargetHealth, TunnelHealth } from '@ctll/protocol';
import type { StreamingProxyManager } from '../proxy/manager';
import type { Logger } from '../logger';
import { HealthFeed } from './health-feed';

export async function readTunnelHealth(manager: StreamingProxyManager, userId: string): Promise<TunnelHealth> {
  const status = await manager.status(userId);
  const connected = status.desktop?.connected ?? false;
  // Only a WebSocket tunnel is pinged; a stale figure must not outlive the link it timed.
  const rtt = connected && status.desktop?.transport === 'ws' ? status.desktop.rtt : null;
  return {
    desktop: connected ? 'online' : 'offline',
    ...targetsHealth(connected ? status.desktop?.target : undefined),
    connected,
    transport: status.desktop?.transport ?? null,
    proxy: status.status,
    activeRequests: status.activeRequests ?? 0,
    rttMs: rtt?.latestMs ?? null,
    rttAverageMs: rtt?.averageMs ?? null,
  };
}

/**
 * `target`: the default (unnamed) target, shaped as before there were several; `targets`: every
 * target, the default first with `name: null`, then each `--target name=url` the bridge reported.
 */
function targetsHealth(report: TargetHealth | null | undefined): Pick<TunnelHealth, 'target' | 'targets'> {
  if (!report) return { target: null, targets: [] };
  const { targets: named = [], ...target } = report;
  return { target, targets: [{ name: null, ...target }, ...named.map((one) => ({ ...one, checkedAt: target.checkedAt }))] };
}

/** How often a watched user's proxy is asked: a bridge's coming and going shows within this. */
const LIVE_INTERVAL_MS = 1_500;
/** Live status streams per user: a few console tabs, not a flood of watchers. */
const LIVE_STREAMS_PER_USER = 5;

/** The feed behind `GET /api/me/events`. */
export function tunnelHealthFeed(manager: StreamingProxyManager, logger: Logger): HealthFeed {
  return new HealthFeed({ read: (userId) => readTunnelHealth(manager, userId), intervalMs: LIVE_INTERVAL_MS, maxPerUser: LIVE_STREAMS_PER_USER, logger });
}
