import type { TargetHealth } from './target';

/**
 * `GET /api/tunnel/:userId/health`, and each `health` event of `GET /api/me/events`: what the
 * web console's My PC page shows.
 */
export interface TunnelHealth {
  /** "Your PC is offline" versus "your PC is online but its model server is not running". */
  desktop: 'online' | 'offline';
  /** The default target, shaped as before there were several. */
  target: Omit<TargetHealth, 'targets'> | null;
  /** Every target, the default first with `name: null`, then each named one the bridge reported. */
  targets: Array<Record<string, unknown>>;
  connected: boolean;
  transport: 'ws' | 'poll' | 'zrok' | null;
  /** The proxy's state: running, starting, stopped, not-found. */
  proxy: string;
  activeRequests: number;
  /** The tunnel's latest ping→pong time, proxy ↔ desktop; null over long-poll or zrok, or before the first pong. */
  rttMs: number | null;
  /** The mean of the last few of those. */
  rttAverageMs: number | null;
}

/** The SSE event name `GET /api/me/events` sends a TunnelHealth under. */
export const HEALTH_EVENT = 'health';
