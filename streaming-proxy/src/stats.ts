/**
 * What the manager asks of a proxy to decide on idling, and what the audit counts: requests and
 * bytes each way, kept as plain numbers (no per-request I/O).
 */
export class ProxyStats {
  requests = 0;
  bytesToDesktop = 0;
  bytesFromDesktop = 0;
  activeExchanges = 0;
  lastActivityAt = Date.now();

  touch(): void {
    this.lastActivityAt = Date.now();
  }
}
