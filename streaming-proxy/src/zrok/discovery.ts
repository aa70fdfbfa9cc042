/**
 * Asks api-backend which zrok shares this proxy's user has registered
 * (`GET /api/zrok/discover/<user hash>`), proving itself with the proxy's own secret. The proxy
 * knows only its user's hash, never the raw id; api-backend accepts either.
 */
import http from 'node:http';
import { z } from 'zod';
import { SECRET_HEADER } from '../http/secret';
import { requestJson } from '../http/json-request';

export interface DiscoveredShare {
  shareId: string;
  publicUrl: string;
  lastHeartbeatAt: string;
}

export interface DiscoveryTarget {
  apiBackendUrl: string;
  userHash: string;
  secret: string;
  timeoutMs?: number;
}

const answerSchema = z.object({
  tunnels: z.array(z.object({ tunnelId: z.string().min(1).max(64), publicUrl: z.string().url(), lastHeartbeatAt: z.string() })),
});

/** A function that fetches the current list; it rejects with a message fit for a log line. */
export function discoveryClient(target: DiscoveryTarget): () => Promise<DiscoveredShare[]> {
  const url = `${target.apiBackendUrl}/api/zrok/discover/${target.userHash}`;
  const timeoutMs = target.timeoutMs ?? 5000;
  return async () => {
    const { status, body } = await requestJson(url, { headers: { [SECRET_HEADER]: target.secret }, timeoutMs });
    if (status < 200 || status >= 300) {
      const message = (body as { error?: { message?: string } } | undefined)?.error?.message ?? http.STATUS_CODES[status] ?? 'no message';
      throw new Error(`discover answered ${status}: ${message}`);
    }
    const parsed = answerSchema.safeParse(body);
    if (!parsed.success) throw new Error('discover answered something that is not a share list');
    // api-backend's public zrok API calls a share's id `tunnelId`; inside the relay it is a share.
    return parsed.data.tunnels.map(({ tunnelId, ...rest }) => ({ shareId: tunnelId, ...rest }));
  };
}
