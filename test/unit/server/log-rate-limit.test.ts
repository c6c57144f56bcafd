import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/host/clock.js';
import { EdgeLog, LogRateLimit } from '../../../src/server/edge-log.js';

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

describe('LogRateLimit per source', () => {
  it('one source takes at most half of a second (rounded up); the rest stays for others', () => {
    const r = new LogRateLimit(5);
    expect(r.perSource).toBe(3);
    const flood = Array.from({ length: 6 }, (_, i) => r.take(1000 + i, '10.0.0.1'));
    expect(flood).toEqual([0, 0, 0, null, null, null]);
    // Another address still gets the two lines left this second, the first carrying the 3 left out.
    expect([r.take(1010, '10.0.0.2'), r.take(1011, '10.0.0.3'), r.take(1012, '10.0.0.4')]).toEqual([
      3,
      0,
      null,
    ]);
    // A new second: the flooding address has its share again.
    expect(r.take(2000, '10.0.0.1')).toBe(1);
  });

  it('a rate of 1 leaves no share to reserve: its one line goes to whoever comes first', () => {
    const r = new LogRateLimit(1);
    expect(r.perSource).toBe(1);
    expect([r.take(0, 'a'), r.take(1, 'b'), r.take(1000, 'b')]).toEqual([0, null, 1]);
  });

  it('refuses a rate that is not a whole number of at least 1', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new LogRateLimit(bad)).toThrow(RangeError);
  });

  it('property: per window at most perSecond lines and perSource per source; a line is left out only when one of the two is reached; every line left out is reported once', () => {
    const step = fc.record({
      dt: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 1500 })),
      source: fc.constantFrom<string | undefined>('a', 'b', 'c', undefined),
    });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(step, { maxLength: 300 }), (perSecond, steps) => {
        const r = new LogRateLimit(perSecond);
        const share = Math.ceil(perSecond / 2);
        let now = 0;
        let windowStart = Number.NEGATIVE_INFINITY;
        let total = 0;
        const bySource = new Map<string, number>();
        let leftOut = 0;
        let reported = 0;
        for (const { dt, source } of steps) {
          now += dt;
          if (now - windowStart >= 1000) {
            windowStart = now;
            total = 0;
            bySource.clear();
          }
          const taken = source === undefined ? 0 : (bySource.get(source) ?? 0);
          const full = total >= perSecond || (source !== undefined && taken >= share);
          const got = r.take(now, source);
          expect(got === null).toBe(full);
          if (got === null) {
            leftOut += 1;
            continue;
          }
          // The count carried is exactly what was left out since the last line.
          expect(got).toBe(leftOut - reported);
          reported = leftOut;
          total += 1;
          if (source !== undefined) bySource.set(source, taken + 1);
          expect(total).toBeLessThanOrEqual(perSecond);
          expect(source === undefined ? 0 : bySource.get(source)!).toBeLessThanOrEqual(share);
        }
      }),
    );
  });
});

describe('EdgeLog', () => {
  it('a kind given its own rate keeps it; others get 5 a second; the fields passed are not changed', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const log = new EdgeLog(logger, clock, { activation: 2 });
    const event = { cmid: 'x' };
    for (let i = 0; i < 4; i++) log.line('activation', 'info', event, 'activation request');
    for (let i = 0; i < 7; i++) log.line('idle', 'info', { n: i }, 'idle');
    clock.advance(1000);
    log.line('activation', 'info', event, 'activation request');
    log.line('idle', 'info', {}, 'idle');
    const by = (msg: string) => lines.filter((l) => l['msg'] === msg).map((l) => l['suppressed'] ?? 0);
    expect(by('activation request')).toEqual([0, 0, 2]);
    expect(by('idle')).toEqual([0, 0, 0, 0, 0, 2]);
    expect(event).toEqual({ cmid: 'x' });
  });
});
