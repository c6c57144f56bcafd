/**
 * The compare bench's verdicts (bench/compare.ts): a target not met is called out of reach only when
 * its same-run bound misses the limit too, and the row says which bound decided.
 */
import { describe, expect, it } from 'vitest';
import { type Floor, judge, type Target, verdict } from '../../../bench/compare.js';

const target = (name: string, value: number | null, met: boolean | null): Target => ({
  target: name,
  value,
  limit: '',
  met,
});

describe('compare verdicts', () => {
  const bounds: Floor[] = [
    { target: 'floor CPU/conversation ÷ no-op (in-process work)', value: 1.2, note: '' },
    { target: 'floor CPU/keep-alive req ÷ no-op (in-process work)', value: 2.68, note: '' },
    { target: 'ceiling conversations/s ÷ vlmcsd', value: 1.17, note: '' },
    { target: 'reference p99 c=64 no-op ÷ vlmcsd', value: 1.17, note: '' },
    { target: 'ceiling keep-alive req/s SQLite ÷ memory', value: null, note: '' },
  ];

  it('judges each unmet target by its bound, on the right side of its limit', () => {
    const checks = [
      target('CPU/conversation memory ÷ no-op', 1.77, false),
      target('CPU/keep-alive req memory ÷ no-op', 3.48, false),
      target('conversations/s SQLite ÷ vlmcsd', 0.78, false),
      target('p99 c=64 SQLite ÷ vlmcsd', 1.42, false),
      target('keep-alive req/s SQLite ÷ memory', 0.75, false),
      target('peak RSS memory (MB)', 75.6, true),
      target('conversations/s memory ÷ baseline', null, null),
    ];
    judge(checks, bounds);
    expect(checks.map((c) => c.reach)).toEqual([
      'within reach', // floor 1.2 <= 1.3
      'out of reach', // floor 2.68 > 2.0
      'out of reach', // ceiling 1.17 < 1.2
      'out of reach', // the no-op host's own p99 is 1.17x vlmcsd's
      null, // its bound was not measured
      null,
      null,
    ]);
    expect(checks.map(verdict)).toEqual([
      'NOT met; within reach in this run (floor 1.2)',
      'NOT met; out of reach in this run (floor 2.68)',
      'NOT met; out of reach in this run (ceiling 1.17)',
      "NOT met; out of reach in this run (the no-op host's own p99 is 1.17×)",
      'NOT met',
      'met',
      'not measured (no --baseline)',
    ]);
  });
});
