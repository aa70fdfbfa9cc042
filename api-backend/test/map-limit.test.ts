import { mapLimit } from '../src/proxy/map-limit';
import { backendUrlAt } from '../src/proxy/docker/networks';

describe('mapLimit', () => {
  it('keeps at most `limit` calls in flight and the results in order', async () => {
    let inFlight = 0;
    let most = 0;
    const results = await mapLimit([5, 1, 4, 2, 3, 0], 2, async (n) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setTimeout(resolve, n * 3));
      inFlight -= 1;
      return n * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30, 0]);
    expect(most).toBe(2);
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
  });
});

describe('backendUrlAt', () => {
  it("moves api-backend's listening URL to its address on a user network", () => {
    expect(backendUrlAt('http://127.0.0.1:8080', '10.200.3.17')).toBe('http://10.200.3.17:8080');
    expect(backendUrlAt(undefined, '10.200.3.17')).toBeUndefined();
  });
});
