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
