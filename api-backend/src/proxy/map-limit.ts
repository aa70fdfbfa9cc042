/**
 * Runs `work` over `items` with at most `limit` at once, keeping the order of results. The driver
 * uses it for sweeps and listings, so thousands of proxies never mean thousands of engine calls
 * (and sockets) in flight at the same moment.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
