/**
 * Security events are counted, not written one by one: a flood of refused tokens is one row per
 * (source address, kind, reason, caller, target, route) and window, with a count. Windows are
 * aligned to the clock (a minute by default), so two replicas' rows for the same minute line up.
 *
 * Memory stays bounded whatever the caller sends: a window holds at most `maxKeys` groups; events
 * beyond that are counted in one group per (kind, reason) with source 'other' and no caller,
 * target or route, so many addresses cannot grow the map. A window is handed on when it closes
 * (checked every `tickMs`, and on each new event), and whatever is open is handed on by flush().
 */
import { randomUUID } from 'node:crypto';
import type { SecurityFact } from './security';
import type { SecurityRecord } from './records';

export interface SecurityCounterOptions {
  /** Length of one window. */
  windowMs: number;
  /** Most groups in one window before the rest fall into the 'other' groups. */
  maxKeys: number;
}

export const SECURITY_COUNTER_DEFAULTS: Readonly<SecurityCounterOptions> = Object.freeze({ windowMs: 60_000, maxKeys: 1_000 });

export const OTHER_SOURCE = 'other';
const UNKNOWN_SOURCE = 'unknown';

interface Group {
  fact: SecurityFact & { source: string };
  count: number;
  lastAt: number;
}

export class SecurityCounter {
  private readonly options: SecurityCounterOptions;
  private groups = new Map<string, Group>();
  private windowStart = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly emit: (record: SecurityRecord) => void,
    options: Partial<SecurityCounterOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.options = { ...SECURITY_COUNTER_DEFAULTS, ...options };
  }

  /** Checks for a closed window a few times per window, so a quiet minute is still written soon after it ends. */
  start(): this {
    this.timer = setInterval(() => this.rollIfClosed(), Math.max(50, Math.min(5_000, this.options.windowMs / 4)));
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Groups currently being counted (for tests and /health-style introspection). */
  get size(): number {
    return this.groups.size;
  }

  count(fact: SecurityFact): void {
    this.rollIfClosed();
    const now = this.now();
    if (this.groups.size === 0) this.windowStart = now - (now % this.options.windowMs);
    const source = fact.source ? normaliseSource(fact.source) : UNKNOWN_SOURCE;
    let key = keyOf({ ...fact, source });
    let group = this.groups.get(key);
    if (!group && this.groups.size >= this.options.maxKeys) {
      const other = { kind: fact.kind, reason: fact.reason, source: OTHER_SOURCE };
      key = keyOf(other);
      group = this.groups.get(key);
      // The 'other' groups are few (one per kind and reason) and may exceed the cap by that many.
      if (!group) this.groups.set(key, (group = { fact: other, count: 0, lastAt: now }));
    } else if (!group) {
      this.groups.set(key, (group = { fact: { ...fact, source }, count: 0, lastAt: now }));
    }
    group.count += 1;
    group.lastAt = now;
  }

  /** Hands on the open window now, closed or not (shutdown). */
  flush(): void {
    const groups = this.groups;
    if (groups.size === 0) return;
    this.groups = new Map();
    const at = new Date(this.windowStart).toISOString();
    for (const group of groups.values()) {
      const { kind, reason, ownerHash, targetHash, route, source } = group.fact;
      this.emit({
        type: 'security',
        id: randomUUID(),
        at,
        lastAt: new Date(group.lastAt).toISOString(),
        count: group.count,
        source,
        kind,
        reason,
        ...(ownerHash ? { ownerHash } : {}),
        ...(targetHash ? { targetHash } : {}),
        ...(route ? { route } : {}),
      });
    }
  }

  private rollIfClosed(): void {
    if (this.groups.size > 0 && this.now() >= this.windowStart + this.options.windowMs) this.flush();
  }
}

function keyOf(fact: SecurityFact & { source: string }): string {
  return JSON.stringify([fact.source, fact.kind, fact.reason, fact.ownerHash ?? null, fact.targetHash ?? null, fact.route ?? null]);
}

/** "::ffff:127.0.0.1" is 127.0.0.1; anything longer than an address is cut (it came from a header). */
function normaliseSource(source: string): string {
  const plain = source.startsWith('::ffff:') && source.includes('.') ? source.slice(7) : source;
  return plain.slice(0, 64);
}
