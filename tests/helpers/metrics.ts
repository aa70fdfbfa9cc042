/** Reading Prometheus text the way a dashboard does: one metric, summed over the series whose labels match. */

export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^(\w+)(?:\{(.*)\})? ([\d.e+-]+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const has = Object.entries(labels).every(([key, value]) => (match[2] ?? '').includes(`${key}="${value}"`));
    if (has) sum += Number(match[3]);
  }
  return sum;
}

/** One metric of a running api-backend's private listener (`metricsUrl`), summed as above. */
export async function readMetric(metricsUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await (await fetch(`${metricsUrl}/metrics`)).text(), name, labels);
}
