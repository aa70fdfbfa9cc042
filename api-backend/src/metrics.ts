/**
 * Prometheus metrics (prom-client), one registry per relay instance so tests can run several.
 * Label values are bounded sets (route patterns, status codes, reasons): never user ids.
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
  readonly proxyStops = new client.Counter({
    name: 'ctll_proxy_stops_total',
    help: 'Streaming proxies stopped, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(countProxies: () => Promise<number>) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'ctll_' });
    new client.Gauge({
      name: 'ctll_proxies',
      help: 'Streaming proxies that exist now',
      registers: [this.registry],
      async collect() {
        this.set(await countProxies().catch(() => 0));
      },
    });
  }
}
