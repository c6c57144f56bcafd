import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DAY,
  formatDuration,
  HOUR,
  ManualClock,
  MINUTE,
  parseDuration,
  SystemClock,
} from '../../../src/host/clock.js';

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['120m', 120 * MINUTE],
    ['4h', 4 * HOUR],
    ['7d', 7 * DAY],
    ['1w', 7 * DAY],
    ['1500ms', 1500],
    ['1d12h', 36 * HOUR],
    ['1h30m15s', HOUR + 30 * MINUTE + 15_000],
    ['1.5h', 90 * MINUTE],
    ['  7d ', 7 * DAY],
    ['250', 250],
    ['0', 0],
    ['0ms', 0],
  ] as const)('%j → %d ms', (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });

  it('takes numbers as milliseconds', () => {
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration(0)).toBe(0);
  });

  it('takes { days, hours, minutes, ms } objects (the control API body)', () => {
    expect(parseDuration({ days: 31 })).toBe(31 * DAY);
    expect(parseDuration({ days: 30, ms: 1 })).toBe(30 * DAY + 1);
    expect(parseDuration({ hours: 1, minutes: 30 })).toBe(90 * MINUTE);
    expect(parseDuration({ ms: 5 })).toBe(5);
    expect(parseDuration({ days: 1, hours: undefined })).toBe(DAY);
  });

  it.each(['', '   ', 'abc', '7x', '7 d', '-5m', 'd', '7d!', '1e3'])('rejects the string %j', (s) => {
    expect(() => parseDuration(s)).toThrow(RangeError);
  });

  it('rejects non-finite numbers', () => {
    expect(() => parseDuration(Number.NaN)).toThrow(RangeError);
    expect(() => parseDuration(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  it('rejects objects with no, unknown or non-numeric keys instead of advancing by 0', () => {
    for (const bad of [
      {},
      { weeks: 1 },
      { day: 31 },
      { days: '31' },
      { days: Number.NaN },
      { days: null },
      [],
    ]) {
      expect(() => parseDuration(bad as never), JSON.stringify(bad)).toThrow(RangeError);
    }
  });

  it('reads back what formatDuration writes', () => {
    fc.assert(
      fc.property(fc.nat({ max: 400 * DAY }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toBe(ms);
      }),
    );
    expect(formatDuration(30 * DAY)).toBe('30d');
    expect(formatDuration(14 * DAY)).toBe('2w');
    expect(formatDuration(1500)).toBe('1500ms');
  });
});

describe('ManualClock', () => {
  it('starts at 2026-01-01T00:00Z by default, or where told', () => {
    expect(new ManualClock().now()).toBe(Date.UTC(2026, 0, 1));
    expect(new ManualClock(1234).now()).toBe(1234);
    expect(new ManualClock(new Date('2024-02-29T12:00:00Z')).now()).toBe(Date.UTC(2024, 1, 29, 12));
    expect(new ManualClock().kind).toBe('manual');
  });

  it('moves only when told', () => {
    const c = new ManualClock(0);
    expect(c.now()).toBe(0);
    expect(c.now()).toBe(0);
    expect(c.advance(30 * DAY)).toBe(30 * DAY);
    expect(c.advance(1)).toBe(30 * DAY + 1);
    c.set(new Date(5));
    expect(c.now()).toBe(5);
    c.set(7);
    expect(c.now()).toBe(7);
  });

  it('refuses to advance by a non-finite amount', () => {
    const c = new ManualClock(0);
    expect(() => c.advance(Number.NaN)).toThrow(RangeError);
    expect(() => c.advance(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(c.now()).toBe(0);
  });
});

describe('SystemClock', () => {
  it('reads Date.now()', () => {
    const c = new SystemClock();
    const before = Date.now();
    const t = c.now();
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
    expect(c.kind).toBe('system');
  });
});
