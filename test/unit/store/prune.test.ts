/**
 * History retention's planner (planPrune, sans-io) at its edges, and planner plus SQL (SqlitePruner on
 * an in-memory database with the real schema) as a property: whatever the history (times out of
 * order, as after a manual clock was set back; holes, as after an age prune), the policy, `now` and
 * the batch size, draining never deletes a row within retention, never the newest row, never more
 * than a batch per step, always ends, and leaves the history within its policy.
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DAY } from '../../../src/host/clock.js';
import { migrate } from '../../../src/store/migrations.js';
import {
  type HistoryExtent,
  planPrune,
  type RetentionPolicy,
  SqlitePruner,
} from '../../../src/store/prune.js';

const extent = (minSeq: number, maxSeq: number, oldestTime: number): HistoryExtent => ({
  minSeq,
  maxSeq,
  oldestTime,
});
const EMPTY: HistoryExtent = { minSeq: null, maxSeq: null, oldestTime: null };

describe('planPrune', () => {
  const rows = (maxRows: number | null): RetentionPolicy => ({ maxRows, maxAgeMs: null });
  const age = (maxAgeMs: number | null): RetentionPolicy => ({ maxRows: null, maxAgeMs });

  it('plans nothing for an empty history or a policy without bounds', () => {
    expect(planPrune({ maxRows: 1, maxAgeMs: 1 }, EMPTY, 10 * DAY)).toBeNull();
    expect(planPrune({ maxRows: null, maxAgeMs: null }, extent(1, 5_000_000, 0), 10 * DAY)).toBeNull();
  });

  it('row bound: nothing at the bound, the excess above it, at most a batch', () => {
    expect(planPrune(rows(100), extent(1, 100, 0), 0)).toBeNull();
    expect(planPrune(rows(100), extent(1, 101, 0), 0)).toEqual({ kind: 'rows', rows: 1, keepFrom: 101 });
    expect(planPrune(rows(100), extent(51, 150, 0), 0)).toBeNull();
    expect(planPrune(rows(100), extent(1, 1_000_000, 0), 0, 2000)).toEqual({
      kind: 'rows',
      rows: 2000,
      keepFrom: 1_000_000,
    });
    expect(planPrune(rows(100), extent(1, 150, 0), 0, 7)?.rows).toBe(7);
  });

  it('age bound: strictly older than now - maxAge; the newest row is kept even when it is old', () => {
    const now = 100 * DAY;
    expect(planPrune(age(90 * DAY), extent(1, 9, 10 * DAY), now)).toBeNull();
    expect(planPrune(age(90 * DAY), extent(1, 9, 10 * DAY - 1), now)).toEqual({
      kind: 'age',
      before: 10 * DAY,
      rows: 2000,
      keepFrom: 9,
    });
    // One row left, however old: it keeps the seq counting (SQLite's next rowid is max + 1).
    expect(planPrune(age(DAY), extent(7, 7, 0), now)).toBeNull();
    // A clock set back before every row: nothing is older than the bound.
    expect(planPrune(age(DAY), extent(1, 9, now), 0)).toBeNull();
  });

  it('row bound first when both are passed', () => {
    const step = planPrune({ maxRows: 10, maxAgeMs: DAY }, extent(1, 20, 0), 100 * DAY, 5);
    expect(step).toEqual({ kind: 'rows', rows: 5, keepFrom: 20 });
  });
});

/** A real history table (the store's schema) with rows of the given times, seq 1..n, minus `holes`. */
function historyDb(times: readonly number[], holes: ReadonlySet<number>) {
  const db = new Database(':memory:');
  migrate(db);
  const insert = db.prepare(
    `INSERT INTO history (seq, time, connection_id, peer, cmid, previous_cmid, application_id, sku_id,
       kms_id, required_count, count, would_activate, hresult, protocol, ndr, workstation, epid,
       license_status, vm)
     VALUES (?, ?, 1, '127.0.0.1:1', 'c', 'p', 'a', 's', 'k', 25, 1, 0, 0, 6, 'ndr64', 'w', 'e', 1, 0)`,
  );
  db.transaction(() => {
    times.forEach((t, i) => {
      if (!holes.has(i + 1)) insert.run(i + 1, t);
    });
  })();
  const all = db.prepare('SELECT seq, time FROM history ORDER BY seq');
  return { db, rows: () => all.all() as { seq: number; time: number }[] };
}

describe('SqlitePruner drains to the policy and never past it (property)', () => {
  it('keeps every row within retention and the newest; batches bounded; ends within the policy', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 120 }),
        fc.array(fc.integer({ min: 1, max: 120 }), { maxLength: 30 }),
        fc.option(fc.integer({ min: 1, max: 60 }), { nil: null }),
        fc.option(fc.integer({ min: 0, max: 150 }), { nil: null }),
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 1, max: 40 }),
        (times, holeList, maxRows, maxAgeMs, now, batch) => {
          const policy: RetentionPolicy = { maxRows, maxAgeMs };
          const { db, rows } = historyDb(times, new Set(holeList));
          try {
            const pruner = new SqlitePruner(db);
            const before = rows();
            if (before.length === 0) {
              expect(pruner.step(policy, now, batch)).toBe(0);
              return;
            }
            const maxSeq = before.at(-1)!.seq;
            const cutoff = maxAgeMs === null ? Number.NEGATIVE_INFINITY : now - maxAgeMs;
            const rowFloor = maxRows === null ? Number.NEGATIVE_INFINITY : maxSeq - maxRows + 1;
            // Within retention: among the newest maxRows seqs and not older than the age bound.
            const protectedSeqs = before
              .filter((r) => r.seq === maxSeq || (r.seq >= rowFloor && r.time >= cutoff))
              .map((r) => r.seq);
            let steps = 0;
            for (;;) {
              const step = planPrune(policy, pruner.extent(), now, batch);
              if (step === null) break;
              expect(step.rows).toBeLessThanOrEqual(batch);
              const n = pruner.run(step);
              expect(n).toBeLessThanOrEqual(batch);
              if (n === 0) break;
              expect(++steps).toBeLessThanOrEqual(before.length);
            }
            const after = rows();
            const kept = new Set(after.map((r) => r.seq));
            for (const s of protectedSeqs) expect(kept.has(s), `seq ${s}`).toBe(true);
            // Within the policy: the row bound (counted as the seq span, so holes only lower it) and
            // nothing older than the age bound but the newest row.
            if (maxRows !== null) expect(after.at(-1)!.seq - after[0]!.seq + 1).toBeLessThanOrEqual(maxRows);
            for (const r of after) if (r.seq !== maxSeq) expect(r.time).toBeGreaterThanOrEqual(cutoff);
            // Only history rows went: the deleted ones are a subset of what was there.
            expect(after.every((r) => before.some((b) => b.seq === r.seq && b.time === r.time))).toBe(true);
          } finally {
            db.close();
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
