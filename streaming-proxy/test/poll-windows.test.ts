/**
 * Growing windows on a polling link (tunnel/poll-windows.ts): a stream's window grows as a poll
 * carries its bytes away only if the window held it back, never past what the bridge takes in one
 * answer nor past the proxy's budget, and its growth goes back when the stream's body is over.
 */
import { INITIAL_WINDOW, WindowBudget } from '@ctll/protocol';
import { PollWindows } from '../src/tunnel/poll-windows';

const MIB = 1024 * 1024;

describe('PollWindows', () => {
  it('gives back only what a poll carried for a stream that was never blocked', () => {
    const windows = new PollWindows(4 * MIB, new WindowBudget(64 * MIB));
    expect(windows.credit('s', 300_000)).toBe(300_000);
    expect(windows.credit('s', INITIAL_WINDOW)).toBe(INITIAL_WINDOW);
  });

  it('doubles a blocked stream’s window as a poll carries its bytes, up to what one answer may hold', () => {
    const budget = new WindowBudget(64 * MIB);
    const windows = new PollWindows(4 * MIB, budget);
    const grants: number[] = [];
    for (let poll = 0; poll < 4; poll++) {
      windows.blockedOn('s');
      grants.push(windows.credit('s', MIB) - MIB);
    }
    expect(grants).toEqual([MIB, 2 * MIB, 0, 0]);
    expect(budget.available).toBe(61 * MIB);
  });

  it('stops growing when the budget is spent, and gives a stream’s growth back when its body ends or the link closes', () => {
    const budget = new WindowBudget(3 * MIB);
    const windows = new PollWindows(4 * MIB, budget);
    windows.blockedOn('a');
    windows.credit('a', MIB);
    windows.blockedOn('a');
    windows.credit('a', MIB);
    windows.blockedOn('b');
    expect(windows.credit('b', MIB)).toBe(MIB);
    windows.ended('a');
    expect(budget.available).toBe(3 * MIB);
    windows.blockedOn('b');
    // Straight to the 4 MiB window `a` ended with, now that the budget has it again.
    expect(windows.credit('b', MIB)).toBe(4 * MIB);
    windows.close();
    expect(budget.available).toBe(3 * MIB);
  });

  it('starts a new stream’s growth at the window the last grown stream ended with, within the answer’s bound and the budget', () => {
    const budget = new WindowBudget(64 * MIB);
    const windows = new PollWindows(4 * MIB, budget);
    windows.blockedOn('first');
    windows.credit('first', MIB);
    expect(windows.credit('first', MIB)).toBe(MIB); // not blocked at this poll: no growth
    windows.ended('first'); // ended at 2 MiB
    windows.blockedOn('second');
    expect(windows.credit('second', MIB)).toBe(2 * MIB); // 2 MiB is no more than double: it doubles
    windows.blockedOn('second');
    expect(windows.credit('second', MIB)).toBe(3 * MIB); // 4 MiB, the answer's bound
    windows.ended('second');
    windows.blockedOn('third');
    expect(windows.credit('third', MIB)).toBe(4 * MIB); // one poll, and it is at 4 MiB
    windows.blockedOn('fourth');
    // The third still holds its growth: the fourth jumps as far as the budget lets it.
    expect(budget.available).toBe(61 * MIB);
    expect(windows.credit('fourth', MIB)).toBe(4 * MIB);
    expect(budget.available).toBe(58 * MIB);
  });

  it('forgets a stream blocked when its body ended, so a later poll of the same id does not grow it', () => {
    const windows = new PollWindows(4 * MIB, new WindowBudget(64 * MIB));
    windows.blockedOn('s');
    windows.ended('s');
    expect(windows.credit('s', MIB)).toBe(MIB);
  });
});
