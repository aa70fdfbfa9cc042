/**
 * Child processes the bench starts, and what it reads about them from /proc. Every child is
 * tracked so that a failing run still ends each one it started (by pid, never by name), and
 * memory is read the way the kernel counts it: VmRSS now, VmHWM the peak since the last reset
 * (writing 5 to /proc/<pid>/clear_refs resets the peak, so a transfer's peak is its own).
 */
import { spawn, fork, type ChildProcess, type SpawnOptions, type ForkOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

const started = new Set<ChildProcess>();

export interface Started {
  child: ChildProcess;
  pid: number;
  /** The last lines it wrote to stderr/stdout, for error messages. */
  tail(): string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

function track(child: ChildProcess): Started {
  started.add(child);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      started.delete(child);
      resolve(code);
    }),
  );
  return {
    child,
    pid: child.pid ?? -1,
    tail: () => lines.slice(-15).join('\n'),
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export function startProcess(command: string, args: string[], options: SpawnOptions = {}): Started {
  return track(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options }));
}

export function forkProcess(script: string, args: string[], options: ForkOptions = {}): Started {
  return track(fork(script, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], ...options }));
}

/** Resolves with the first IPC message matching `accept`, or rejects if the child exits first. */
export function nextMessage<T>(proc: Started, accept: (message: unknown) => message is T, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`${what}: no answer within ${timeoutMs} ms\n${proc.tail()}`)), timeoutMs);
    const onMessage = (message: unknown) => {
      if (accept(message)) finish(undefined, message);
    };
    const onExit = (code: number | null) => finish(new Error(`${what}: exited (code ${code})\n${proc.tail()}`));
    const finish = (error?: Error, value?: T) => {
      clearTimeout(timer);
      proc.child.off('message', onMessage);
      proc.child.off('exit', onExit);
      if (error) reject(error);
      else resolve(value as T);
    };
    proc.child.on('message', onMessage);
    proc.child.once('exit', onExit);
  });
}

/** Runs a bench tool's `main` and exits: 0 when it resolves, 1 (after stopping every child) when it throws. */
export function runTool(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    async (error: Error) => {
      console.error(error);
      await stopAll();
      process.exit(1);
    },
  );
}

/** Ends every child still running (used on the way out, also after a failure). */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...started].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 3000).unref();
        }),
    ),
  );
}

/** A free TCP port on 127.0.0.1 (bound and released; the small race is acceptable here). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export { portOpen } from '../../tests/helpers/ports';

export interface Memory {
  /** Resident set now, MiB. */
  rssMb: number;
  /** Peak resident set since start or the last resetPeak, MiB. */
  hwmMb: number;
}

export function memoryOf(pid: number): Memory | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) / 1024;
    return { rssMb: field('VmRSS'), hwmMb: field('VmHWM') };
  } catch {
    return undefined;
  }
}

/** Resets the kernel's peak-RSS counter of a process; false when the kernel refuses. */
export function resetPeak(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Direct children of a process, from /proc/<pid>/task/<tid>/children. */
export function childPids(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (text) pids.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // the process is gone
  }
  return pids;
}

/** The command line of a process, for telling its children apart. */
export function commandOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/**
 * Samples VmRSS of some processes every `everyMs` until stopped; reports, per name, the baseline
 * (first sample) and the peak (the larger of the sampled maximum and the kernel's VmHWM).
 */
export class RssSampler {
  private readonly baseline = new Map<string, number>();
  private readonly peak = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: Record<string, number>,
    everyMs = 20,
  ) {
    for (const [name, pid] of Object.entries(pids)) {
      resetPeak(pid);
      const memory = memoryOf(pid);
      this.baseline.set(name, memory?.rssMb ?? Number.NaN);
      this.peak.set(name, memory?.rssMb ?? Number.NaN);
    }
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    for (const [name, pid] of Object.entries(this.pids)) {
      const memory = memoryOf(pid);
      if (memory) this.peak.set(name, Math.max(this.peak.get(name) ?? 0, memory.rssMb));
    }
  }

  stop(): Record<string, { baselineMb: number; peakMb: number; growthMb: number }> {
    clearInterval(this.timer);
    this.sample();
    const out: Record<string, { baselineMb: number; peakMb: number; growthMb: number }> = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const hwm = memoryOf(pid)?.hwmMb ?? Number.NaN;
      const baselineMb = this.baseline.get(name) ?? Number.NaN;
      const peakMb = Math.max(this.peak.get(name) ?? Number.NaN, Number.isFinite(hwm) ? hwm : 0);
      out[name] = { baselineMb: round1(baselineMb), peakMb: round1(peakMb), growthMb: round1(peakMb - baselineMb) };
    }
    return out;
  }
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/** CPU time a process has used so far (user + system), in seconds. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The environment a process started with (readable for our own children). */
export function environOf(pid: number): Record<string, string> {
  try {
    return Object.fromEntries(
      fs
        .readFileSync(`/proc/${pid}/environ`, 'utf8')
        .split('\0')
        .filter(Boolean)
        .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
    );
  } catch {
    return {};
  }
}
