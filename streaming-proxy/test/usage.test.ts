import { UsageCounter } from '../src/usage';

const at = (hour: number, minute: number, second = 0) => Date.UTC(2026, 0, 1, hour, minute, second);

describe("a user's usage in their proxy", () => {
  it('answers the last 60 minutes, the current one last, with quiet minutes as zeros', () => {
    const usage = new UsageCounter(at(9, 0));
    usage.add('requests', 1, at(10, 0, 5));
    usage.add('requests', 1, at(10, 0, 50));
    usage.add('bytesFromDesktop', 700, at(10, 0, 51));
    usage.add('requests', 1, at(10, 30));
    const { minutes, today } = usage.snapshot(at(10, 30, 10));
    expect(minutes).toHaveLength(60);
    expect(minutes.at(-1)).toEqual({ at: new Date(at(10, 30)).toISOString(), requests: 1, bytesToDesktop: 0, bytesFromDesktop: 0 });
    expect(minutes.find((minute) => minute.at === new Date(at(10, 0)).toISOString())).toEqual({
      at: new Date(at(10, 0)).toISOString(),
      requests: 2,
      bytesToDesktop: 0,
      bytesFromDesktop: 700,
    });
    expect(minutes.reduce((sum, minute) => sum + minute.requests, 0)).toBe(3);
    expect(today).toEqual({ since: new Date(at(9, 0)).toISOString(), requests: 3, bytesToDesktop: 0, bytesFromDesktop: 700 });
  });

  it('drops minutes older than an hour, even when their slot is not reused', () => {
    const usage = new UsageCounter(at(9, 0));
    usage.add('requests', 4, at(10, 0));
    expect(usage.snapshot(at(10, 59)).minutes.reduce((sum, minute) => sum + minute.requests, 0)).toBe(4);
    expect(usage.snapshot(at(11, 0)).minutes.reduce((sum, minute) => sum + minute.requests, 0)).toBe(0);
    // The same slot an hour later starts from zero.
    usage.add('requests', 1, at(11, 0, 30));
    expect(usage.snapshot(at(11, 0, 40)).minutes.at(-1)?.requests).toBe(1);
  });

  it('starts today over at midnight UTC, and says counting began when the proxy started if that was later', () => {
    const usage = new UsageCounter(at(14, 2));
    usage.add('bytesToDesktop', 10, at(23, 59));
    expect(usage.snapshot(at(23, 59, 30)).today).toEqual({ since: new Date(at(14, 2)).toISOString(), requests: 0, bytesToDesktop: 10, bytesFromDesktop: 0 });
    const nextDay = at(24, 0, 1);
    expect(usage.snapshot(nextDay).today).toEqual({ since: new Date(at(24, 0)).toISOString(), requests: 0, bytesToDesktop: 0, bytesFromDesktop: 0 });
    usage.add('requests', 1, nextDay);
    expect(usage.snapshot(nextDay).today.requests).toBe(1);
  });
});
