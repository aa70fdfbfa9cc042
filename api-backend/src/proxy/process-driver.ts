/**
 * The embedded driver: each proxy is the bundled streaming-proxy program as a child process on
 * 127.0.0.1, on a port it picks itself and reports over the IPC channel. The child table is the
 * record of what runs; a child that exits is gone from it at once. Children get only the
 * environment they need (never our database URL or keys), a heap cap from PROXY_MEMORY_MB, and
 * die with us: they exit when the IPC channel to this process closes. Over that channel a child is
 * also handed its desktops' tunnels as sockets (tunnel-handoffs.ts).
 *
 * The heap cap alone does not bound a child (buffers live outside the heap), so where /proc
 * exists a MemoryWatchdog samples each child's resident memory and kills one over
 * PROXY_MEMORY_MB; the exit is reported with reason `memory`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { startFailed } from './docker/errors';
import type { DriverHealth, ProxyDriver, ProxyEndpoint, ProxyExitListener, ProxyHandle } from './driver';
import type { Logger } from '../logger';
import { canWatchMemory, MemoryWatchdog, type WatchedChild } from './memory-watchdog';
import { NotHealthyError, waitHealthy } from './wait-healthy';
import { canHandOff, TunnelHandOffs, type HandOffOutcome } from './tunnel-handoffs';
import type { Duplex } from 'node:stream';

export interface ProcessDriverOptions {
  script: string;
  memoryMb: number;
  /** How often each child's resident memory is checked against memoryMb; 0 turns the watchdog off. */
  memoryCheckMs: number;
  startTimeoutMs: number;
  /** The proxy's environment for an owner and secret (proxy-env.ts). */
  env: (ownerHash: string, secret: string) => Record<string, string>;
  /** The secret a new proxy gets (proxy-secrets.ts). */
  secretFor: (ownerHash: string) => string;
  logger: Logger;
  onExit: ProxyExitListener;
}

interface Child {
  process: ChildProcess;
  handle: ProxyHandle;
  stopping: boolean;
  /** Set when the watchdog killed it: its exit is reported as such. */
  overMemory?: string;
  exited: Promise<void>;
  handOffs: TunnelHandOffs;
}

const STOP_GRACE_MS = 3000;

/**
 * V8's young generation grows to tens of MiB under a burst of allocations (a flood of frames), and
 * a proxy's memory is bounded per user: small semi-spaces keep a burst's garbage from becoming
 * resident memory, at the price of more frequent (cheap) scavenges.
 */
export const PROXY_SEMI_SPACE_MB = 2;

export class ProcessDriver implements ProxyDriver {
  readonly name = 'process' as const;
  readonly outlivesRelay = false;
  private readonly children = new Map<string, Child>();
  private readonly watchdog: MemoryWatchdog | undefined;

  constructor(private readonly options: ProcessDriverOptions) {
    if (options.memoryCheckMs > 0 && canWatchMemory()) {
      this.watchdog = new MemoryWatchdog({
        limitBytes: options.memoryMb * 1024 * 1024,
        intervalMs: options.memoryCheckMs,
        children: () => this.watched(),
        onOverLimit: (child, rss) => this.overMemory(child, rss),
      });
      this.watchdog.start();
    } else if (options.memoryCheckMs > 0) {
      options.logger.warn('StreamingProxy memory watchdog unavailable (no /proc): only the heap is capped');
    }
  }

  /** Child processes end with their parent: a new process has nothing to adopt or reconcile. */
  async start(): Promise<void> {}

  async reconcile(): Promise<void> {}

  async create(ownerHash: string): Promise<ProxyHandle> {
    const existing = this.children.get(ownerHash);
    if (existing && !existing.stopping) return existing.handle;

    const secret = this.options.secretFor(ownerHash);
    const child = fork(this.options.script, [], {
      env: this.options.env(ownerHash, secret),
      execArgv: [`--max-old-space-size=${this.options.memoryMb}`, `--max-semi-space-size=${PROXY_SEMI_SPACE_MB}`],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    const handle: ProxyHandle = {
      ownerHash,
      id: String(child.pid),
      state: 'starting',
      createdAt: new Date(),
    };
    const entry: Child = {
      process: child,
      handle,
      stopping: false,
      exited: new Promise((resolve) => child.once('exit', () => resolve())),
      handOffs: new TunnelHandOffs(child),
    };
    this.children.set(ownerHash, entry);
    // For the child's whole life: an 'error' nobody listens to (a failed kill or IPC send, a fork
    // that could not spawn) would be thrown in api-backend and end it.
    child.on('error', (error) => this.options.logger.warn('StreamingProxy process error', { owner: ownerHash, pid: child.pid, error: error.message }));
    child.once('exit', (code, signal) => {
      if (this.children.get(ownerHash) === entry) this.children.delete(ownerHash);
      handle.state = 'stopped';
      if (entry.overMemory) this.options.onExit(ownerHash, entry.overMemory);
      else if (!entry.stopping) this.options.onExit(ownerHash, `process exited (${signal ?? `code ${code}`})`);
    });

    try {
      const port = await this.waitListening(child);
      // One GET /health: a proxy of another release (PROXY_SCRIPT from elsewhere) is refused, never used.
      const exited = async () => (child.exitCode !== null || child.signalCode !== null ? `exited during start-up (${child.signalCode ?? `code ${child.exitCode}`})` : null);
      await waitHealthy('127.0.0.1', port, { timeoutMs: this.options.startTimeoutMs, alive: exited, aliveEveryMs: 0 }).catch((error: unknown) => {
        throw error instanceof NotHealthyError ? startFailed(error.message, error) : error;
      });
      handle.endpoint = { host: '127.0.0.1', port, secret };
      handle.state = 'running';
      return handle;
    } catch (error) {
      entry.stopping = true;
      child.kill('SIGKILL');
      this.children.delete(ownerHash);
      throw error;
    }
  }

  async remove(ownerHash: string): Promise<void> {
    const entry = this.children.get(ownerHash);
    if (!entry) return;
    entry.stopping = true;
    entry.process.kill('SIGTERM');
    const timer = setTimeout(() => entry.process.kill('SIGKILL'), STOP_GRACE_MS);
    await entry.exited;
    clearTimeout(timer);
    if (this.children.get(ownerHash) === entry) this.children.delete(ownerHash);
  }

  async inspect(ownerHash: string): Promise<ProxyHandle | null> {
    return this.children.get(ownerHash)?.handle ?? null;
  }

  /** The child table is in this process already: nothing to cache. */
  async endpoint(ownerHash: string): Promise<ProxyEndpoint | null> {
    const handle = this.children.get(ownerHash)?.handle;
    return handle?.state === 'running' && handle.endpoint ? handle.endpoint : null;
  }

  forgetEndpoint(): void {}

  /** The child is sent the desktop's socket: no second connection, and no byte of it passes through us. */
  handOffTunnel(ownerHash: string, socket: Duplex, headers: Record<string, string | string[]>, head: Buffer, outcome: HandOffOutcome): boolean {
    const entry = this.children.get(ownerHash);
    if (!entry || entry.stopping || entry.handle.state !== 'running' || !entry.process.connected || !canHandOff(socket)) return false;
    entry.handOffs.handOff(socket, headers, head, outcome);
    return true;
  }

  async list(): Promise<ProxyHandle[]> {
    return [...this.children.values()].map((entry) => entry.handle);
  }

  running(): number {
    return [...this.children.values()].filter((entry) => entry.handle.state === 'running').length;
  }

  async health(): Promise<DriverHealth> {
    return { ok: true, detail: `${this.children.size} proxy processes` };
  }

  async close(): Promise<void> {
    this.watchdog?.stop();
    await Promise.all([...this.children.keys()].map((ownerHash) => this.remove(ownerHash)));
  }

  private watched(): WatchedChild[] {
    const list: WatchedChild[] = [];
    for (const [ownerHash, entry] of this.children) {
      if (entry.process.pid !== undefined && !entry.overMemory) list.push({ pid: entry.process.pid, ownerHash });
    }
    return list;
  }

  private overMemory(child: WatchedChild, rssBytes: number): void {
    const entry = this.children.get(child.ownerHash);
    if (!entry || entry.process.pid !== child.pid) return;
    const rssMb = Math.round(rssBytes / (1024 * 1024));
    entry.overMemory = `killed: memory (resident ${rssMb} MiB over PROXY_MEMORY_MB=${this.options.memoryMb})`;
    this.options.logger.error('StreamingProxy over its memory budget; killing it', {
      owner: child.ownerHash,
      pid: child.pid,
      reason: 'memory',
      rssMb,
      limitMb: this.options.memoryMb,
    });
    entry.process.kill('SIGKILL');
  }

  private waitListening(child: ChildProcess): Promise<number> {
    return new Promise((resolve, reject) => {
      const fail = (message: string) => {
        cleanup();
        reject(startFailed(message));
      };
      const onMessage = (message: unknown) => {
        if (isListening(message)) {
          cleanup();
          resolve(message.port);
        }
      };
      const onExit = (code: number | null, signal: string | null) => fail(`exited during start-up (${signal ?? `code ${code}`})`);
      const onError = (error: Error) => fail(error.message);
      const timer = setTimeout(() => fail(`not listening after ${this.options.startTimeoutMs} ms`), this.options.startTimeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        child.off('error', onError);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.once('error', onError);
    });
  }
}

function isListening(message: unknown): message is { type: 'listening'; port: number } {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { type?: unknown }).type === 'listening' &&
    typeof (message as { port?: unknown }).port === 'number'
  );
}
