import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/host/clock.js';

describe('ManualClock timers', () => {
  it('fires due timers in time order on advance, each seeing its own time', () => {
    const c = new ManualClock(1000);
    const seen: [string, number][] = [];
    c.at(1500, () => seen.push(['b', c.now()]));
    c.at(1200, () => seen.push(['a', c.now()]));
    c.at(1500, () => seen.push(['c', c.now()]));
    c.advance(499);
    expect(seen).toEqual([['a', 1200]]);
    c.advance(1);
    expect(seen).toEqual([
      ['a', 1200],
      ['b', 1500],
      ['c', 1500],
    ]);
    expect(c.now()).toBe(1500);
    expect(c.pendingTimers).toBe(0);
  });

  it('cancel stops a timer; a timer armed by a timer fires in the same advance when due', () => {
    const c = new ManualClock(0);
    const seen: number[] = [];
    const t = c.at(10, () => seen.push(10));
    t.cancel();
    c.at(20, () => c.at(25, () => seen.push(c.now())));
    c.advance(30);
    expect(seen).toEqual([25]);
    expect(c.now()).toBe(30);
    c.set(100);
    c.at(50, () => seen.push(-1)); // already due: fires on the next move
    expect(seen).toEqual([25]);
    c.advance(0);
    expect(seen).toEqual([25, -1]);
  });
});
