/**
 * What the manager asks of a proxy to decide on idling, and what the audit counts: requests and
 * bytes each way, kept as plain numbers (no per-request I/O). Every count also goes into the
 * per-minute usage the console's chart reads (usage.ts).
 */
import { UsageCounter, type UsageKind } from './usage';

export class ProxyStats {
  activeExchanges = 0;
  lastActivityAt = Date.now();
  readonly usage = new UsageCounter();
  private readonly totals: Record<UsageKind, number> = { requests: 0, bytesToDesktop: 0, bytesFromDesktop: 0 };

  get requests(): number {
    return this.totals.requests;
  }

  get bytesToDesktop(): number {
    return this.totals.bytesToDesktop;
  }

  get bytesFromDesktop(): number {
    return this.totals.bytesFromDesktop;
  }

  /** One relayed request, through the tunnel or a zrok share. */
  countRequest(): void {
    this.count('requests', 1);
  }

  countBytes(direction: 'bytesToDesktop' | 'bytesFromDesktop', bytes: number): void {
    this.count(direction, bytes);
  }

  touch(): void {
    this.lastActivityAt = Date.now();
  }

  private count(kind: UsageKind, amount: number): void {
    this.totals[kind] += amount;
    this.usage.add(kind, amount);
  }
}
