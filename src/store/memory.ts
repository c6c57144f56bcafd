/** The ephemeral store: plain maps and an array, same semantics as SqliteStore. Nothing survives the process. */
import {
  checkCounter,
  checkHistoryQuery,
  checkMeta,
  comparePoolEntries,
  StoreClosedError,
} from './common.js';
import type {
  HistoryInput,
  HistoryQuery,
  HistoryRecord,
  PoolEntry,
  Store,
  StoreChange,
  StoreOptions,
  StoreSnapshot,
} from './store.js';

function copyRecord(r: HistoryInput, seq: number): HistoryRecord {
  const out: HistoryRecord = {
    seq,
    time: r.time,
    connectionId: r.connectionId,
    peer: r.peer,
    cmid: r.cmid,
    previousCmid: r.previousCmid,
    applicationId: r.applicationId,
    skuId: r.skuId,
    kmsId: r.kmsId,
    requiredCount: r.requiredCount,
    count: r.count,
    wouldActivate: r.wouldActivate,
    hresult: r.hresult,
    protocol: r.protocol,
    ndr: r.ndr,
    workstation: r.workstation,
    epid: r.epid,
    licenseStatus: r.licenseStatus,
    vm: r.vm,
  };
  if (r.fault !== undefined && r.fault !== null) out.fault = r.fault;
  return out;
}

const NO_ENTRIES: readonly PoolEntry[] = Object.freeze([]);

function copyEntry(e: PoolEntry): PoolEntry {
  const out: PoolEntry = {
    applicationId: e.applicationId,
    cmid: e.cmid,
    firstSeen: e.firstSeen,
    lastSeen: e.lastSeen,
    workstation: e.workstation,
    skuId: e.skuId,
    kmsId: e.kmsId,
  };
  if (e.requiredCount !== undefined) out.requiredCount = e.requiredCount;
  return out;
}

/**
 * History rows a memory store keeps by default: plenty for a test's assertions and a dashboard, and
 * a few MB of heap (each row is a few hundred bytes), so a long-running `serve --store memory` stays
 * small. `serve --history-limit N` / StoreOptions.historyLimit changes it.
 */
export const DEFAULT_MAX_HISTORY = 10_000;

/** A MemoryStore for StoreOptions (only `historyLimit` applies to it). */
export function openMemoryStore(opts: StoreOptions = {}): MemoryStore {
  return new MemoryStore(opts.historyLimit !== undefined ? { maxHistory: opts.historyLimit } : {});
}

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly path = null;
  /** applicationId -> cmid -> entry */
  private readonly pools = new Map<string, Map<string, PoolEntry>>();
  private readonly meta = new Map<string, string>();
  private readonly counters = new Map<string, number>();
  /** history[i].seq === dropped + i + 1 */
  private records: HistoryRecord[] = [];
  /** Oldest records let go to keep memory bounded (`maxHistory`). */
  private dropped = 0;
  private closed = false;
  /**
   * A long-running `--store memory` host must not grow without bound: only the newest `maxHistory`
   * records are kept (about 1 KB each); pools and meta are always complete.
   */
  readonly maxHistory: number;

  constructor(opts: { maxHistory?: number } = {}) {
    this.maxHistory = opts.maxHistory ?? DEFAULT_MAX_HISTORY;
    if (!(Number.isInteger(this.maxHistory) && this.maxHistory >= 1)) {
      throw new RangeError(`maxHistory must be a whole number of at least 1, got ${this.maxHistory}`);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError(this.kind);
  }

  load(): StoreSnapshot {
    this.assertOpen();
    const pools: PoolEntry[] = [];
    for (const byCmid of this.pools.values()) for (const e of byCmid.values()) pools.push(copyEntry(e));
    pools.sort(comparePoolEntries);
    return { pools, meta: Object.fromEntries(this.meta), counters: Object.fromEntries(this.counters) };
  }

  commit(change: StoreChange): number {
    this.assertOpen();
    // Check and copy everything first so a throw part-way leaves the store untouched (atomicity, as in
    // SQLite). No intermediate arrays: this runs once per request.
    const { meta, counters } = change;
    if (meta) for (const k in meta) if (Object.hasOwn(meta, k)) checkMeta(k, meta[k]);
    if (counters) for (const k in counters) if (Object.hasOwn(counters, k)) checkCounter(k, counters[k]);
    const record = change.history
      ? copyRecord(change.history, this.dropped + this.records.length + 1)
      : undefined;
    const upsert = change.upsert;
    const upserts = upsert === undefined || upsert.length === 0 ? NO_ENTRIES : upsert.map(copyEntry);
    if (change.remove) {
      for (const r of change.remove) {
        const byCmid = this.pools.get(r.applicationId);
        if (byCmid?.delete(r.cmid) && byCmid.size === 0) this.pools.delete(r.applicationId);
      }
    }
    for (const e of upserts) {
      let byCmid = this.pools.get(e.applicationId);
      if (!byCmid) {
        byCmid = new Map();
        this.pools.set(e.applicationId, byCmid);
      }
      byCmid.set(e.cmid, e);
    }
    if (meta) for (const k in meta) if (Object.hasOwn(meta, k)) this.meta.set(k, meta[k]!);
    if (counters)
      for (const k in counters) if (Object.hasOwn(counters, k)) this.counters.set(k, counters[k]!);
    if (!record) return 0;
    this.records.push(record);
    if (this.records.length > this.maxHistory) {
      // Drop in chunks of a tenth so trimming stays amortised O(1) per commit.
      const n = Math.max(1, this.records.length - this.maxHistory + Math.floor(this.maxHistory / 10));
      this.records.splice(0, n);
      this.dropped += n;
    }
    return record.seq!;
  }

  setMeta(key: string, value: string): void {
    this.assertOpen();
    checkMeta(key, value);
    this.meta.set(key, value);
  }

  getMeta(key: string): string | undefined {
    this.assertOpen();
    return this.meta.get(key);
  }

  history(q: HistoryQuery = {}): HistoryRecord[] {
    this.assertOpen();
    checkHistoryQuery(q);
    const out: HistoryRecord[] = [];
    const limit = q.limit ?? Number.POSITIVE_INFINITY;
    if (limit === 0) return out;
    // seq is dropped + index + 1, so sinceSeq gives a starting index.
    const start = q.sinceSeq === undefined ? 0 : Math.max(0, Math.floor(q.sinceSeq) - this.dropped);
    for (let i = start; i < this.records.length; i++) {
      const r = this.records[i]!;
      if (q.from !== undefined && r.time < q.from) continue;
      if (q.to !== undefined && r.time > q.to) continue;
      if (q.cmid !== undefined && r.cmid !== q.cmid) continue;
      if (q.applicationId !== undefined && r.applicationId !== q.applicationId) continue;
      if (q.wouldActivate !== undefined && r.wouldActivate !== q.wouldActivate) continue;
      out.push(copyRecord(r, r.seq!));
      if (out.length >= limit) break;
    }
    return out;
  }

  historyCount(): number {
    this.assertOpen();
    return this.dropped + this.records.length;
  }

  reset(opts: { all?: boolean } = {}): void {
    this.assertOpen();
    this.pools.clear();
    this.records = [];
    this.dropped = 0;
    if (opts.all) {
      this.meta.clear();
      this.counters.clear();
    }
  }

  close(): void {
    this.closed = true;
  }
}
