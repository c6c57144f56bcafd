/** Time enters the host only through a Clock (milliseconds since the Unix epoch). */
export interface Clock {
  now(): number;
  readonly kind: 'system' | 'manual';
}

/** A timer armed through a Scheduler; cancel() is idempotent. */
export interface Timer {
  cancel(): void;
}

/**
 * Deadlines through the clock: `at(time, fn)` runs `fn` once the clock reaches `time` (ms since the
 * epoch). The system clock arms a real timer; the manual clock fires its timers from `advance`/`set`,
 * so code driven by deadlines runs in virtual time in tests.
 */
export interface Scheduler extends Clock {
  at(time: number, fn: () => void): Timer;
}

export class SystemClock implements Scheduler {
  readonly kind = 'system' as const;
  now(): number {
    return Date.now();
  }

  at(time: number, fn: () => void): Timer {
    return new SystemTimer(setTimeout(fn, Math.max(0, time - Date.now())));
  }
}

/** One object per armed timer (a closure for cancel would add two more, per connection at the edge). */
class SystemTimer implements Timer {
  constructor(private readonly timeout: ReturnType<typeof setTimeout>) {}

  cancel(): void {
    clearTimeout(this.timeout);
  }
}

interface ManualTimer {
  time: number;
  seq: number;
  fn: (() => void) | null;
}

/** A clock that moves only when told: the basis of every time-dependent test. */
export class ManualClock implements Scheduler {
  readonly kind = 'manual' as const;
  private t: number;
  /** Armed timers, kept sorted by (time, arming order). */
  private timers: ManualTimer[] = [];
  private seq = 0;

  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.t = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.t;
  }

  /** Runs `fn` when the clock is moved to `time` or past it (at once on the next move if already due). */
  at(time: number, fn: () => void): Timer {
    const timer: ManualTimer = { time, seq: this.seq++, fn };
    let i = this.timers.length;
    while (i > 0 && this.timers[i - 1]!.time > time) i--;
    this.timers.splice(i, 0, timer);
    return {
      cancel: () => {
        timer.fn = null;
      },
    };
  }

  /** Timers not yet fired nor cancelled. */
  get pendingTimers(): number {
    return this.timers.filter((t) => t.fn !== null).length;
  }

  set(t: number | Date): void {
    const to = typeof t === 'number' ? t : t.getTime();
    this.fireUntil(to);
    this.t = to;
  }

  advance(ms: number): number {
    if (!Number.isFinite(ms)) throw new RangeError(`cannot advance by ${ms}`);
    const to = this.t + ms;
    this.fireUntil(to);
    this.t = to;
    return this.t;
  }

  /**
   * Fires every timer due by `to`, in time order, with the clock showing each timer's own time (a
   * timer armed by a firing timer fires too if it is due by `to`). Moving backwards fires nothing.
   */
  private fireUntil(to: number): void {
    for (;;) {
      const next = this.timers[0];
      if (next === undefined || next.time > to) break;
      this.timers.shift();
      if (next.fn === null) continue;
      if (next.time > this.t) this.t = next.time;
      const fn = next.fn;
      next.fn = null;
      fn();
    }
  }
}

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export type DurationInput =
  | number
  | string
  | { days?: number; hours?: number; minutes?: number; ms?: number };

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: MINUTE, h: HOUR, d: DAY, w: 7 * DAY };
const OBJECT_UNITS: Record<string, number> = { days: DAY, hours: HOUR, minutes: MINUTE, ms: 1 };

/**
 * Durations as users write them: `30s`, `120m`, `4h`, `7d`, `1w`, `1500ms`, a bare number of
 * milliseconds, or `{ days, hours, minutes, ms }` (at least one key, numbers only, no other keys).
 * Compound strings like `1d12h` are accepted. Throws RangeError on anything else.
 */
export function parseDuration(d: DurationInput): number {
  if (typeof d === 'number') {
    if (!Number.isFinite(d)) throw new RangeError(`bad duration ${d}`);
    return d;
  }
  if (typeof d === 'object' && d !== null) {
    // Strict: a typo (`{ "day": 31 }`, `{ "weeks": 1 }`) or a non-number must not become a silent 0.
    const entries = Object.entries(d).filter(([, x]) => x !== undefined);
    if (Array.isArray(d) || entries.length === 0) {
      throw new RangeError('bad duration object: give at least one of days, hours, minutes, ms');
    }
    let v = 0;
    for (const [k, x] of entries) {
      const unit = Object.hasOwn(OBJECT_UNITS, k) ? OBJECT_UNITS[k] : undefined;
      if (unit === undefined) {
        throw new RangeError(`bad duration object: unknown key "${k}" (days, hours, minutes, ms)`);
      }
      if (typeof x !== 'number' || !Number.isFinite(x)) {
        throw new RangeError(`bad duration object: ${k} is not a number`);
      }
      v += x * unit;
    }
    if (!Number.isFinite(v)) throw new RangeError('bad duration object');
    return v;
  }
  const s = String(d).trim();
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let consumed = 0;
  // biome-ignore lint/suspicious/noAssignInExpressions: a sticky-regex scan
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (consumed !== s.length || s.length === 0) {
    throw new RangeError(`bad duration "${s}" (use e.g. 30s, 120m, 4h, 7d)`);
  }
  return total;
}

export function formatDuration(ms: number): string {
  for (const [u, f] of [
    ['w', 7 * DAY],
    ['d', DAY],
    ['h', HOUR],
    ['m', MINUTE],
    ['s', 1000],
  ] as const) {
    if (ms !== 0 && ms % f === 0) return `${ms / f}${u}`;
  }
  return `${ms}ms`;
}
