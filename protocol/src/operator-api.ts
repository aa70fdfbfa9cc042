import { z } from 'zod';

/**
 * The operator's view (`/api/admin/*`), as api-backend answers it and the web console reads it:
 * declared once here so the two cannot drift apart. Users appear only as owner hashes.
 */

const isoTime = z.string();

const desktopCountsSchema = z.object({ ws: z.number(), poll: z.number(), zrok: z.number() });
export type DesktopCounts = z.infer<typeof desktopCountsSchema>;

export const operatorProxySchema = z.object({
  /** The owner hash (first 16 hex of SHA-256(user id)), never the user id. */
  owner: z.string(),
  driver: z.string(),
  state: z.enum(['running', 'starting', 'stopped', 'not-found']),
  startedAt: isoTime,
  ageMs: z.number(),
  /** Since the proxy's last traffic, as it reports; null when it did not answer. */
  idleMs: z.number().nullable(),
  /** Resident memory as the proxy measures itself; null when it did not answer. */
  memoryBytes: z.number().nullable(),
  /** The desktop's path now (tunnel or zrok share), null when none is connected. */
  transport: z.enum(['ws', 'poll', 'zrok']).nullable(),
  activeRequests: z.number().nullable(),
  /** False: running, but its status could not be read just now. */
  reachable: z.boolean(),
});
export type OperatorProxy = z.infer<typeof operatorProxySchema>;

export const recentErrorCountSchema = z.object({ code: z.string(), status: z.number(), count: z.number(), lastAt: isoTime });
export type RecentErrorCount = z.infer<typeof recentErrorCountSchema>;

/** One minute of the operator's chart: what a look at the proxies found during it (the latest look). */
export const operatorSampleSchema = z.object({ at: isoTime, proxies: z.number(), desktops: desktopCountsSchema });
export type OperatorSample = z.infer<typeof operatorSampleSchema>;

/** `GET /api/admin/overview`. */
export const operatorOverviewSchema = z.object({
  at: isoTime,
  driver: z.string(),
  /** Proxies running against PROXY_MAX. */
  capacity: z.object({ running: z.number(), max: z.number() }),
  proxies: z.array(operatorProxySchema),
  /** Connected desktops by transport (each tunnel connection, and each healthy zrok share). */
  desktops: desktopCountsSchema,
  /** Error answers of this api-backend over the last hour, the most frequent first. */
  errors: z.array(recentErrorCountSchema),
  /** Per minute over the last hour, oldest first; minutes this api-backend did not look at are absent. */
  series: z.array(operatorSampleSchema),
});
export type OperatorOverview = z.infer<typeof operatorOverviewSchema>;

/** `GET /api/me`: who the relay takes the caller to be; `operator` says whether /api/admin/* is open to them. */
export const meSchema = z.object({ userId: z.string(), owner: z.string(), operator: z.boolean() });
export type Me = z.infer<typeof meSchema>;

/** `POST /api/admin/proxies/:ownerHash/stop`. */
export const operatorStopSchema = z.object({ owner: z.string(), stopped: z.boolean() });
export type OperatorStop = z.infer<typeof operatorStopSchema>;
