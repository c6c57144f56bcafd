/**
 * The embedded store behind the KMS host. The host logic is sans-io and keeps the count pools in
 * memory; after each request it hands the store what changed (`commit`) *before* the response goes on
 * the wire, and on restart it rebuilds its pools, identity (ePIDs, HwId), manual clock and counters
 * from `load()`.
 *
 * Two implementations with the same semantics: `MemoryStore` (ephemeral, `openStore('memory')`) and
 * `SqliteStore` (better-sqlite3, WAL; see sqlite.ts for the durability argument).
 */
import fs from 'node:fs';
import path from 'node:path';
import { openCheckedSqliteStore } from './integrity.js';
import { openMemoryStore } from './memory.js';

/** One CMID in one application's count pool. Times are ms since the Unix epoch. */
export interface PoolEntry {
  applicationId: string;
  cmid: string;
  firstSeen: number;
  lastSeen: number;
  workstation: string;
  skuId: string;
  kmsId: string;
  /**
   * N_policy (RequiredClientCount) of the CMID's latest request: the pool's capacity follows the
   * highest one held (docs/host.md section 3). Absent on rows written before schema version 4.
   */
  requiredCount?: number;
}

/** One row of the append-only activation history: one per request the host answered (or faulted). */
export interface HistoryRecord {
  /** Assigned by the store (1, 2, 3, ... in commit order; restarts at 1 after `reset`). Ignored on input. */
  seq?: number;
  time: number;
  connectionId: number;
  peer: string;
  cmid: string;
  previousCmid: string;
  applicationId: string;
  skuId: string;
  kmsId: string;
  requiredCount: number;
  /** 0 when an error HRESULT was answered. */
  count: number;
  wouldActivate: boolean;
  hresult: number;
  /** KMS protocol major version: 4, 5 or 6. */
  protocol: number;
  ndr: 'ndr32' | 'ndr64';
  workstation: string;
  epid: string;
  licenseStatus: number;
  vm: boolean;
  /** Name of an injected fault, if any. Absent (not `undefined`-valued) on records read back without one. */
  fault?: string;
}

/**
 * A history row as committed: a HistoryRecord, or anything with its fields (the host passes its
 * ActivationEvent, which has them all, instead of copying them into a record per request). `seq` is
 * ignored; a null `fault` means none.
 */
export type HistoryInput = Omit<HistoryRecord, 'fault'> & { fault?: string | null };

/**
 * Filters are ANDed. Results are always in ascending `seq` order; `limit` keeps the first `limit`
 * matches, so `{ sinceSeq, limit }` pages forward through the history.
 */
export interface HistoryQuery {
  /** Inclusive lower bound on `time` (ms). */
  from?: number;
  /** Inclusive upper bound on `time` (ms). */
  to?: number;
  cmid?: string;
  applicationId?: string;
  /** Only rows with `seq > sinceSeq`. */
  sinceSeq?: number;
  /** Non-negative integer; 0 returns nothing. */
  limit?: number;
  wouldActivate?: boolean;
}

export interface StoreSnapshot {
  /** Every pool entry, sorted by applicationId then cmid (UTF-16 code-unit order). */
  pools: PoolEntry[];
  meta: Record<string, string>;
  /**
   * The host's cumulative counters by name (request_counters): request counts that, unlike the
   * history, are never pruned and survive `reset()` (see src/host/counters.ts for the names).
   */
  counters: Record<string, number>;
}

/**
 * One request's changes. Applied atomically, in this order: `remove`, then `upsert`, then `meta` and
 * `counters`, then `history`.
 */
export interface StoreChange {
  /** Full replacement of the entry with the same (applicationId, cmid); the host is authoritative. */
  upsert?: PoolEntry[];
  /** Expired or evicted CMIDs. Removing an absent entry is not an error. */
  remove?: { applicationId: string; cmid: string }[];
  /** Meta keys to set in the same transaction (e.g. request counters, the manual clock). */
  meta?: Record<string, string>;
  /** Counter values to set in the same transaction (name → non-negative safe integer). */
  counters?: Record<string, number>;
  history?: HistoryInput;
}

export interface Store {
  readonly kind: 'memory' | 'sqlite';
  /** Absolute path of the database file, or null for the memory store. */
  readonly path: string | null;
  load(): StoreSnapshot;
  /**
   * One request's changes, applied atomically: upserts, deletions (expired/evicted CMIDs), the history
   * row; returns the history seq (0 when the change carries no history record). When this returns, the
   * change survives a crash of this process (see sqlite.ts), so the response may then be sent.
   */
  commit(change: StoreChange): number;
  /**
   * Several changes in one atomic transaction (group commit), applied in order as `commit` would;
   * returns their history seqs. Optional: without it the host commits the changes one by one.
   */
  commitMany?(changes: StoreChange[]): number[];
  setMeta(key: string, value: string): void;
  getMeta(key: string): string | undefined;
  history(q?: HistoryQuery): HistoryRecord[];
  historyCount(): number;
  /**
   * Empties pools and history (meta such as ePIDs, and the counters, stay unless `all`). History seq
   * restarts at 1.
   */
  reset(opts?: { all?: boolean }): void;
  /** Idempotent. Any other call after `close` throws. */
  close(): void;
}

export interface StoreOptions {
  /**
   * `normal` (default): synchronous=NORMAL in WAL mode; a committed change survives the process being
   * killed (SIGKILL, crash, OOM) but not an OS crash or power loss. `full`: synchronous=FULL, the WAL is
   * fsync'd on every commit, which also survives OS crash/power loss at a much higher per-commit cost.
   * Ignored by the memory store.
   */
  durability?: 'normal' | 'full';
  /**
   * Memory store only: activation history rows kept, the newest (default 10,000; older ones are let
   * go, the pools are always complete). A SQLite store's history is bounded by its retention
   * (src/store/prune.ts, driven by the host runtime).
   */
  historyLimit?: number;
  /** SQLite only: move a damaged store file aside (renamed, never deleted) and start an empty one. */
  moveDamaged?: boolean;
  /** SQLite only: told about what opening did that the operator should know (an empty file initialised). */
  onWarning?: (message: string) => void;
}

export { DEFAULT_STORE_PATH } from '../defaults.js';

/**
 * `'memory'` (or `':memory:'`) gives an ephemeral MemoryStore; anything else is a file path (relative
 * to the working directory) for a SqliteStore, whose parent directory is created if missing, checked
 * before use (src/store/integrity.ts: a damaged file is refused). A file
 * literally named `memory` must be spelled `./memory`.
 */
export function openStore(spec: 'memory' | string, opts: StoreOptions = {}): Store {
  if (spec === 'memory' || spec === ':memory:') return openMemoryStore(opts);
  if (spec.trim() === '')
    throw new Error('openStore: empty store path (use "memory" for an ephemeral store)');
  const file = path.resolve(spec);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return openCheckedSqliteStore(file, opts);
}
