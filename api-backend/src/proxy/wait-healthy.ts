/**
 * Waits until a freshly started proxy answers GET /health with 200, over plain HTTP from where
 * api-backend will talk to it. This, not Docker's HEALTHCHECK (whose first verdict takes at least
 * its interval), is what "started" means: the address is routable and the program listens.
 * While waiting, it asks `alive` now and then, so a proxy that crashed at start-up fails the
 * wait at once with the reason instead of at the timeout.
 *
 * The answer also says which protocol the proxy speaks (protocol/src/proxy-api.ts): a proxy of
 * another release (an image pinned to an older tag, a container an older api-backend left running)
 * fails the wait at once with ProxyVersionError, so it is never used; the drivers replace an
 * adopted one and refuse a fresh one with the message naming what to upgrade.
 */
import http from 'node:http';
import { PROTOCOL_VERSION, proxyHealthSchema, UNNAMED_PROXY_PROTOCOL_VERSION } from '@ctll/protocol';

export interface WaitHealthyOptions {
  timeoutMs: number;
  /** Pause between probes; a proxy usually listens some 100-300 ms after its container starts. */
  intervalMs?: number;
  /** Per-probe limit, so a black-holed address costs one probe, not the whole wait. */
  probeTimeoutMs?: number;
  /** How often `alive` is consulted. */
  aliveEveryMs?: number;
  /** Resolves null while the proxy may still come up, or the reason it never will. */
  alive?: () => Promise<string | null>;
}

const DEFAULTS = { intervalMs: 20, probeTimeoutMs: 1000, aliveEveryMs: 500 } as const;

export class NotHealthyError extends Error {}

/** The proxy answered /health but speaks another protocol version: waiting longer cannot help. */
export class ProxyVersionError extends NotHealthyError {
  constructor(
    readonly spoken: number,
    readonly expected: number,
  ) {
    super(
      `the proxy speaks api-backend/proxy protocol ${spoken}, this api-backend speaks ${expected}: ` +
        'run the streaming-proxy of the same release as api-backend (docker and swarm drivers: upgrade the image PROXY_IMAGE names; ' +
        'process driver: rebuild the bundle PROXY_SCRIPT names with `npm run build`)',
    );
  }
}

export async function waitHealthy(host: string, port: number, options: WaitHealthyOptions): Promise<void> {
  const { timeoutMs, intervalMs, probeTimeoutMs, aliveEveryMs, alive } = { ...DEFAULTS, ...options };
  const deadline = Date.now() + timeoutMs;
  let lastAliveCheck = Date.now();
  let lastProblem = 'no answer yet';
  for (;;) {
    const budget = Math.min(probeTimeoutMs, Math.max(1, deadline - Date.now()));
    const problem = await probe(host, port, budget);
    if (problem === null) return;
    if (problem instanceof ProxyVersionError) throw problem;
    // A last probe cut short by the deadline (a few ms left) says less than an answer seen before it.
    const cutShort = budget < probeTimeoutMs && problem.startsWith('timed out') && lastProblem !== 'no answer yet';
    if (!cutShort) lastProblem = problem;
    if (alive && Date.now() - lastAliveCheck >= aliveEveryMs) {
      lastAliveCheck = Date.now();
      const dead = await alive();
      if (dead) throw new NotHealthyError(dead);
    }
    if (Date.now() + intervalMs >= deadline) {
      throw new NotHealthyError(`no healthy answer from ${host}:${port} within ${timeoutMs} ms (PROXY_START_TIMEOUT_MS; last: ${lastProblem})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** One GET /health; null when it answered 200 in this api-backend's protocol, otherwise what went wrong. */
function probe(host: string, port: number, timeoutMs: number): Promise<string | ProxyVersionError | null> {
  return new Promise((resolve) => {
    // agent: false, so probes never leave sockets in the relay's keep-alive pool.
    const req = http.get({ host, port, path: '/health', agent: false, timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return resolve(`HTTP ${res.statusCode}`);
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body = (body + chunk).slice(0, 4096)));
      res.on('end', () => resolve(healthProblem(body)));
      res.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** What is wrong with a 200 answer's body, if anything. */
function healthProblem(body: string): string | ProxyVersionError | null {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return 'HTTP 200 with a body that is not JSON';
  }
  const parsed = proxyHealthSchema.safeParse(json);
  if (!parsed.success) return `HTTP 200 with an unexpected body (${parsed.error.issues[0]?.message ?? 'invalid'})`;
  const spoken = parsed.data.protocolVersion ?? UNNAMED_PROXY_PROTOCOL_VERSION;
  return spoken === PROTOCOL_VERSION ? null : new ProxyVersionError(spoken, PROTOCOL_VERSION);
}
