/**
 * Waits until a freshly started proxy answers GET /health with 200, over plain HTTP from where
 * api-backend will talk to it. This, not Docker's HEALTHCHECK (whose first verdict takes at least
 * its interval), is what "started" means: the address is routable and the program listens.
 * While waiting, it asks `alive` now and then, so a proxy that crashed at start-up fails the
 * wait at once with the reason instead of at the timeout.
 */
import http from 'node:http';

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

export async function waitHealthy(host: string, port: number, options: WaitHealthyOptions): Promise<void> {
  const { timeoutMs, intervalMs, probeTimeoutMs, aliveEveryMs, alive } = { ...DEFAULTS, ...options };
  const deadline = Date.now() + timeoutMs;
  let lastAliveCheck = Date.now();
  let lastProblem = 'no answer yet';
  for (;;) {
    const problem = await probe(host, port, Math.min(probeTimeoutMs, Math.max(1, deadline - Date.now())));
    if (problem === null) return;
    lastProblem = problem;
    if (alive && Date.now() - lastAliveCheck >= aliveEveryMs) {
      lastAliveCheck = Date.now();
      const dead = await alive();
      if (dead) throw new NotHealthyError(dead);
    }
    if (Date.now() + intervalMs >= deadline) {
      throw new NotHealthyError(`no healthy answer from ${host}:${port} within ${timeoutMs} ms (last: ${lastProblem})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** One GET /health; null when it answered 200, otherwise what went wrong. */
function probe(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    // agent: false, so probes never leave sockets in the relay's keep-alive pool.
    const req = http.get({ host, port, path: '/health', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? null : `HTTP ${res.statusCode}`);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}
