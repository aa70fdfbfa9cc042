/**
 * Requests from the proxy to a zrok share: keep-alive pools (one per scheme), TCP_NODELAY, and
 * every new socket opened through the guarded lookup (guard.ts), so no request reaches an address
 * the policy refuses, whatever DNS says today. Redirects are never followed.
 */
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { checkShareUrl, guardedLookup, systemResolve, type Resolve } from './guard';

export interface ShareRequest {
  method: string;
  /** Path and query on the share, starting with `/`; joined to the share URL's own path. */
  path: string;
  headers: http.OutgoingHttpHeaders;
  /** Socket inactivity limit; exchanges keep their own silence timer on top. */
  timeoutMs?: number;
}

export interface ShareClientOptions {
  allowInsecure: boolean;
  /** The hosts (and subdomains) a share may be on. */
  shareDomains: readonly string[];
  resolve?: Resolve;
}

const AGENT_OPTIONS = {
  keepAlive: true,
  scheduling: 'lifo' as const,
  maxSockets: Infinity,
  maxFreeSockets: 32,
  // Idle sockets go before a typical frontend's 60 s keep-alive closes them under us.
  timeout: 50_000,
};

export class ShareClient {
  private readonly httpAgent = new http.Agent(AGENT_OPTIONS);
  private readonly httpsAgent = new https.Agent(AGENT_OPTIONS);
  private readonly lookup: LookupFunction;

  constructor(private readonly options: ShareClientOptions) {
    this.lookup = guardedLookup(options.allowInsecure, options.resolve ?? systemResolve);
  }

  /** Starts a request to the share; throws ShareAddressError for a URL the policy refuses outright. */
  request(share: URL, request: ShareRequest): http.ClientRequest {
    checkShareUrl(share, this.options.allowInsecure, this.options.shareDomains);
    const secure = share.protocol === 'https:';
    const req = (secure ? https : http).request({
      method: request.method,
      protocol: share.protocol,
      hostname: share.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: share.port || (secure ? 443 : 80),
      path: `${share.pathname.replace(/\/+$/, '')}${request.path}`,
      headers: request.headers,
      agent: secure ? this.httpsAgent : this.httpAgent,
      lookup: this.lookup,
      timeout: request.timeoutMs,
    });
    req.on('socket', (socket) => socket.setNoDelay(true));
    return req;
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
