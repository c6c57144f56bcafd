import { describe, expect, it } from 'vitest';
import { LogRateLimit } from '../../../src/server/edge-log.js';

describe('LogRateLimit', () => {
  it('lets 5 lines a second through and reports how many it left out', () => {
    const r = new LogRateLimit(5);
    const out = Array.from({ length: 12 }, (_, i) => r.take(1000 + i));
    expect(out).toEqual([0, 0, 0, 0, 0, null, null, null, null, null, null, null]);
    // The next second: the first line carries the 7 left out.
    expect(r.take(2000)).toBe(7);
    expect(r.take(2001)).toBe(0);
  });
});
