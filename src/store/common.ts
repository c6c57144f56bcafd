/** Helpers shared by the two store implementations, so both give the same answers. */
import type { HistoryQuery, PoolEntry } from './store.js';

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The order of `StoreSnapshot.pools`: applicationId, then cmid (UTF-16 code units). */
export function comparePoolEntries(a: PoolEntry, b: PoolEntry): number {
  return cmp(a.applicationId, b.applicationId) || cmp(a.cmid, b.cmid);
}

/** Throws on a query no implementation should silently reinterpret. */
export function checkHistoryQuery(q: HistoryQuery): void {
  if (q.limit !== undefined && !(Number.isInteger(q.limit) && q.limit >= 0)) {
    throw new RangeError(`history: limit must be a non-negative integer, got ${q.limit}`);
  }
  for (const k of ['from', 'to', 'sinceSeq'] as const) {
    const v = q[k];
    if (v !== undefined && Number.isNaN(v)) throw new RangeError(`history: ${k} is NaN`);
  }
}

/** Meta is string → string in both stores (SQLite would otherwise quietly turn a number into text). */
export function checkMeta(key: unknown, value: unknown): void {
  if (typeof key !== 'string' || typeof value !== 'string') {
    throw new TypeError(`meta ${String(key)}: key and value must be strings`);
  }
}

/** Counters are name → non-negative safe integer in both stores. */
export function checkCounter(name: unknown, value: unknown): void {
  if (typeof name !== 'string' || name === '')
    throw new TypeError(`counter ${String(name)}: name must be a non-empty string`);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`counter ${name}: value must be a non-negative safe integer, got ${String(value)}`);
  }
}

export class StoreClosedError extends Error {
  override readonly name = 'StoreClosedError';
  constructor(kind: string) {
    super(`${kind} store is closed`);
  }
}

/**
 * A SQLite error with the store file in its message (SQLite's own messages never name it); any other
 * error (a RangeError for a bad query, StoreClosedError) as it is.
 */
export function nameStoreError(file: string, err: unknown): Error {
  const code = (err as { code?: unknown } | null)?.code;
  if (!(err instanceof Error) || typeof code !== 'string' || !code.startsWith('SQLITE_')) return err as Error;
  if (err.message.includes(file)) return err;
  return Object.assign(new Error(`${file}: ${err.message}`, { cause: err }), { code });
}
