/**
 * History retention for the SQLite store: a flood of requests must not fill the disk. The decision of
 * what to prune is sans-io (`planPrune`: the retention policy, the history's extent and `now` in, one
 * bounded step out); `pruneStep` carries one step out as one short transaction, so a background driver
 * (src/server/history-pruner.ts) can interleave them with requests. Only history rows are ever pruned:
 * the pools and the meta table (identity, clock, cumulative counters) are never touched.
 *
 * The newest row is always kept, so the history `seq` keeps counting after an age prune empties the
 * rest (SQLite's next rowid is max(seq) + 1), and a reader paging with `since` never sees seqs reused.
 */
import type Database from 'better-sqlite3';

const DAY_MS = 86_400_000;

export interface RetentionPolicy {
  /** Rows older than this (by `time`, against the host clock) are pruned; null = no age bound. */
  maxAgeMs: number | null;
  /** At most this many rows are kept, the newest; null = no row bound. */
  maxRows: number | null;
}

/** 90 days or 1,000,000 rows, whichever comes first (about 330 MB on disk; docs/robustness.md). */
export const DEFAULT_RETENTION: RetentionPolicy = { maxAgeMs: 90 * DAY_MS, maxRows: 1_000_000 };

/** Rows one step deletes at most: a few ms of work, so requests never wait long behind it. */
export const PRUNE_BATCH = 2000;

/** What the planner needs to know about the history; all cheap to read (rowid and index ends). */
export interface HistoryExtent {
  /** Smallest and largest seq; null when the history is empty. */
  minSeq: number | null;
  maxSeq: number | null;
  /** Smallest `time` (ms); null when empty. */
  oldestTime: number | null;
}

export type PruneStep =
  /** Delete the `rows` oldest rows (by seq). */
  | { kind: 'rows'; rows: number; keepFrom: number }
  /** Delete up to `rows` rows with `time < before`, never the newest (`keepFrom` = max seq). */
  | { kind: 'age'; before: number; rows: number; keepFrom: number };

/**
 * The next step, or null when the history is within the policy. Rows are counted as
 * `maxSeq - minSeq + 1`, an upper bound (an age prune may leave holes), so the row bound errs on the
 * side of keeping fewer rows, never more.
 */
export function planPrune(
  policy: RetentionPolicy,
  extent: HistoryExtent,
  now: number,
  batch: number = PRUNE_BATCH,
): PruneStep | null {
  const { minSeq, maxSeq, oldestTime } = extent;
  if (minSeq === null || maxSeq === null) return null;
  const rows = maxSeq - minSeq + 1;
  if (policy.maxRows !== null && rows > policy.maxRows) {
    return { kind: 'rows', rows: Math.min(batch, rows - policy.maxRows), keepFrom: maxSeq };
  }
  if (policy.maxAgeMs !== null && oldestTime !== null && minSeq < maxSeq) {
    const before = now - policy.maxAgeMs;
    if (oldestTime < before) return { kind: 'age', before, rows: batch, keepFrom: maxSeq };
  }
  return null;
}

/** The SQL side: the history's extent and one step, as prepared statements on one connection. */
export class SqlitePruner {
  private readonly extentStmt: Database.Statement<
    [],
    { minSeq: number | null; maxSeq: number | null; oldestTime: number | null }
  >;
  private readonly byRows: Database.Statement<{ rows: number; keepFrom: number }>;
  private readonly byAge: Database.Statement<{ before: number; rows: number; keepFrom: number }>;

  constructor(db: Database.Database) {
    // Each of the three is an index or rowid end: O(log n), not a scan.
    this.extentStmt = db.prepare(
      `SELECT (SELECT seq FROM history ORDER BY seq LIMIT 1) AS minSeq,
              (SELECT seq FROM history ORDER BY seq DESC LIMIT 1) AS maxSeq,
              (SELECT min(time) FROM history) AS oldestTime`,
    );
    this.byRows = db.prepare(
      `DELETE FROM history WHERE seq < (SELECT seq FROM history ORDER BY seq LIMIT 1) + @rows
         AND seq < @keepFrom`,
    );
    this.byAge = db.prepare(
      `DELETE FROM history WHERE seq IN
         (SELECT seq FROM history WHERE time < @before AND seq < @keepFrom ORDER BY time LIMIT @rows)`,
    );
  }

  extent(): HistoryExtent {
    return this.extentStmt.get()!;
  }

  /** Carries out one step (one implicit transaction); returns the rows deleted. */
  run(step: PruneStep): number {
    if (step.kind === 'rows') return this.byRows.run({ rows: step.rows, keepFrom: step.keepFrom }).changes;
    return this.byAge.run({ before: step.before, rows: step.rows, keepFrom: step.keepFrom }).changes;
  }

  /** Plans and runs one step against `now`; returns the rows deleted (0 = within the policy). */
  step(policy: RetentionPolicy, now: number, batch: number = PRUNE_BATCH): number {
    const step = planPrune(policy, this.extent(), now, batch);
    return step ? this.run(step) : 0;
  }
}
