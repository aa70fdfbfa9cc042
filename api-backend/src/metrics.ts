/**
 * Prometheus metrics (prom-client), one registry per relay instance so tests can run several.
 * Label values are bounded sets (route templates, status codes, reasons): never user ids, never
 * a raw path (a stranger could make up paths by the million, each a series kept forever).
 */
import client from 'prom-client';

export class Metrics {
  readonly registry = new client.Registry();
  readonly httpRequests = new client.Counter({
    name: 'ctll_http_requests_total',
    help: 'HTTP requests answered by api-backend',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly relayRequests = new client.Counter({
    name: 'ctll_relay_requests_total',
    help: 'Web client requests relayed to proxies (over their frame links)',
    registers: [this.registry],
  });
  readonly relayBytes = new client.Counter({
    name: 'ctll_relay_bytes_total',
    help: 'Body bytes relayed between web clients and desktops',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly tunnelUpgrades = new client.Counter({
    name: 'ctll_tunnel_upgrades_total',
    help: 'Desktop tunnel upgrade attempts by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly authFailures = new client.Counter({
    name: 'ctll_auth_failures_total',
    help: 'Rejected tokens by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly proxyStarts = new client.Histogram({
    name: 'ctll_proxy_start_seconds',
    help: 'Time to create a streaming proxy until it answers',
    labelNames: ['driver'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
    registers: [this.registry],
  });
  /** Creates that failed (engine trouble, a proxy that never answered); refusals by the start budget are not counted. */
  readonly proxyStartFailures = new client.Counter({
    name: 'ctll_proxy_start_failures_total',
    help: 'Streaming proxy creates that failed',
    registers: [this.registry],
  });
  /** Desktop tunnels spliced through this api-backend that ended, for any reason: a storm of them is an outage. */
  readonly tunnelCloses = new client.Counter({
    name: 'ctll_tunnel_closes_total',
    help: 'Desktop tunnels through this api-backend that closed',
    registers: [this.registry],
  });
  readonly proxyStops = new client.Counter({
    name: 'ctll_proxy_stops_total',
    help: 'Streaming proxies stopped, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly auditWritten = new client.Counter({
    name: 'ctll_audit_written_total',
    help: 'Audit records written to the database',
    registers: [this.registry],
  });
  /**
   * Should stay 0: overflow = session queue full during an outage, security_overflow = security
   * counts beyond their own small queue, rejected = refused by the database, shutdown = not flushed in time.
   */
  readonly auditDropped = new client.Counter({
    name: 'ctll_audit_dropped_total',
    help: 'Audit records lost, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  /** One proxy's journal or status could not be read by a background loop; the others go on. */
  readonly proxyPullFailures = new client.Counter({
    name: 'ctll_proxy_pull_failures_total',
    help: 'Failed reads of one proxy by a background loop (audit_pull: the audit journal pull), by loop',
    labelNames: ['loop'] as const,
    registers: [this.registry],
  });
  /** Set by the audit once it runs: how many records wait for the database. */
  auditQueueLength: () => number = () => 0;
  /** Set once the relay listens: desktop tunnels spliced through this process now. */
  openTunnels: () => number = () => 0;

  /** `countProxies` answers from what the driver holds: a scrape must never reach the Docker engine. */
  /** `maxProxies` is PROXY_MAX, exported so that a capacity alert needs no copy of the setting. */
  constructor(countProxies: () => number, maxProxies?: number) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'ctll_' });
    // Every reason shows from the start, as 0, so an alert on any increase needs no special case.
    for (const reason of ['overflow', 'security_overflow', 'rejected', 'shutdown']) this.auditDropped.inc({ reason }, 0);
    this.proxyPullFailures.inc({ loop: 'audit_pull' }, 0);
    this.proxyStartFailures.inc(0);
    const queueLength = () => this.auditQueueLength();
    const tunnels = () => this.openTunnels();
    new client.Gauge({
      name: 'ctll_tunnels_open',
      help: 'Desktop tunnels spliced through this api-backend now',
      registers: [this.registry],
      collect() {
        this.set(tunnels());
      },
    });
    if (maxProxies !== undefined) {
      new client.Gauge({ name: 'ctll_proxies_max', help: 'Streaming proxies this api-backend may run at once (PROXY_MAX)', registers: [this.registry] }).set(maxProxies);
    }
    new client.Gauge({
      name: 'ctll_audit_queued',
      help: 'Audit records waiting to be written',
      registers: [this.registry],
      collect() {
        this.set(queueLength());
      },
    });
    new client.Gauge({
      name: 'ctll_proxies',
      help: 'Streaming proxies running now',
      registers: [this.registry],
      collect() {
        this.set(countProxies());
      },
    });
  }
}
