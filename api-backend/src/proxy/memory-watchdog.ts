/**
 * The process driver's memory limit. `--max-old-space-size` caps only the JavaScript heap: socket
 * buffers, Buffers and native memory are outside it, so a child can grow far past its heap cap.
 * The watchdog samples each child's resident set (VmRSS in /proc/<pid>/status) on an interval and
 * kills a child over its budget, so one user can never take the host's memory. Where /proc does
 * not exist (not Linux) it reports that once and does nothing; the heap cap still applies.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';

export interface WatchedChild {
  pid: number;
  ownerHash: string;
}

export interface MemoryWatchdogOptions {
  /** The most resident memory a child may use, in bytes. */
  limitBytes: number;
  intervalMs: number;
  /** The children to check, asked afresh on every round. */
  children: () => WatchedChild[];
  /** Called once for a child found over the limit; it must kill the child. */
  onOverLimit: (child: WatchedChild, rssBytes: number) => void;
}

/** Resident memory of a process in bytes, or null when it is gone or /proc cannot tell. */
export async function readRssBytes(pid: number): Promise<number | null> {
  let status: string;
  try {
    status = await readFile(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : null;
}

/** True where the watchdog can see children's memory. */
export function canWatchMemory(): boolean {
  return existsSync('/proc/self/status');
}

export class MemoryWatchdog {
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private readonly reported = new Set<number>();

  constructor(private readonly options: MemoryWatchdogOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round: every child over the limit is reported (once per pid). */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const children = this.options.children();
      const alive = new Set(children.map((child) => child.pid));
      for (const pid of this.reported) if (!alive.has(pid)) this.reported.delete(pid);
      await Promise.all(
        children.map(async (child) => {
          const rss = await readRssBytes(child.pid);
          if (rss === null || rss <= this.options.limitBytes || this.reported.has(child.pid)) return;
          this.reported.add(child.pid);
          this.options.onOverLimit(child, rss);
        }),
      );
    } finally {
      this.checking = false;
    }
  }
}
