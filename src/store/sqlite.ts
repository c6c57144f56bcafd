/**
 * The persistent store: one SQLite file through better-sqlite3, in WAL mode.
 *
 * Durability (the requirement: a client must never receive a response whose CMID is then lost when the
 * process crashes, i.e. SIGKILL, an uncaught exception, the OOM killer; not power loss):
 *
 * - The host calls `commit()` before it sends the response. `commit()` runs one SQLite transaction;
 *   when it returns, SQLite has `write()`n the transaction's pages and its commit frame into the `-wal`
 *   file. Those bytes are now in the kernel's page cache, owned by the OS, not by our process.
 * - If the process then dies, however abruptly, the kernel still writes those pages back to the file
 *   (or serves them to the next reader from the cache). The next `open` finds a WAL whose last frame
 *   is a valid commit frame (checksums chain through the frames), replays it, and the CMID is there.
 * - `synchronous = NORMAL` in WAL mode only skips the `fsync()` of the WAL at each commit (it still
 *   syncs at checkpoints, so the database file itself is never corrupted). An `fsync()` protects data
 *   against the *OS* losing its page cache (kernel panic, power loss), which a process crash does not
 *   do. So NORMAL already meets the requirement, at a few microseconds per commit instead of an fsync.
 * - `durability: 'full'` (synchronous = FULL) fsyncs the WAL on every commit: use it when the lab
 *   must also survive power loss or a VM being reset, and accept the per-commit cost of one fsync.
 * - A process crash *during* `commit()` (before it returns) may lose that one transaction, all or
 *   nothing; but the response has not been sent, so no client saw it.
 * - Group commit (`commitMany`): the TCP server handles every call that arrives in one event-loop
 *   turn, then commits all their changes in one transaction, then writes their responses. Everything
 *   above applies to that transaction as a whole: none of its responses is written before it returns,
 *   and a crash before that loses only changes whose responses were never sent. One WAL commit then
 *   serves several requests (the fixed cost of a commit is about 40 µs here, a change about 10 µs).
 *
 * test/unit/store/sqlite.test.ts checks this by SIGKILLing a child process right after a commit.
 *
 * Other settings: busy_timeout so a reader in another process (e.g. a CLI reading history while the
 * host runs) makes us wait instead of failing; foreign_keys off (there are none, and it costs a check
 * per statement); all statements on the per-request path are prepared once in the constructor.
 */
import Database from 'better-sqlite3';
import {
  checkCounter,
  checkHistoryQuery,
  checkMeta,
  comparePoolEntries,
  StoreClosedError,
} from './common.js';
import { checkSchema, migrate } from './migrations.js';
import type {
  HistoryQuery,
  HistoryRecord,
  PoolEntry,
  Store,
  StoreChange,
  StoreOptions,
  StoreSnapshot,
} from './store.js';

/** How long a statement waits for a lock held by another connection before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/** History rows per multi-row INSERT (19 values each; far below SQLite's limit on bound variables). */
const HISTORY_CHUNK = 16;

/** Counter rows per multi-row upsert (a commit moves about 3; a reset writes about 13). */
const COUNTER_CHUNK = 16;

const HISTORY_INSERT = `INSERT INTO history (time, connection_id, peer, cmid, previous_cmid, application_id, sku_id,
  kms_id, required_count, count, would_activate, hresult, protocol, ndr, workstation, epid, license_status, vm,
  fault) VALUES `;
const HISTORY_ROW = '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

const HISTORY_COLUMNS = `seq, time, connection_id AS connectionId, peer, cmid, previous_cmid AS previousCmid,
  application_id AS applicationId, sku_id AS skuId, kms_id AS kmsId, required_count AS requiredCount, count,
  would_activate AS wouldActivate, hresult, protocol, ndr, workstation, epid, license_status AS licenseStatus,
  vm, fault`;

interface HistoryRow extends Omit<HistoryRecord, 'wouldActivate' | 'vm' | 'fault'> {
  wouldActivate: number;
  vm: number;
  fault: string | null;
}

function rowToRecord(row: HistoryRow): HistoryRecord {
  const { fault, wouldActivate, vm, ...rest } = row;
  const out: HistoryRecord = { ...rest, wouldActivate: wouldActivate === 1, vm: vm === 1 };
  if (fault !== null) out.fault = fault;
  return out;
}

/** Bits of HistoryQuery that change the SQL text; one cached statement per combination. */
const FILTERS = [
  ['from', 'time >= @from'],
  ['to', 'time <= @to'],
  ['cmid', 'cmid = @cmid'],
  ['applicationId', 'application_id = @applicationId'],
  ['sinceSeq', 'seq > @sinceSeq'],
  ['wouldActivate', 'would_activate = @wouldActivate'],
  ['limit', null],
] as const;

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly path: string;
  /** The connection, for tests and diagnostics (pragmas, ad-hoc queries). Not part of `Store`. */
  readonly db: Database.Database;

  private readonly stmt: {
    remove: Database.Statement<[string, string]>;
    upsert: Database.Statement<[string, string, number, number, string, string, string, number | null]>;
    setMeta: Database.Statement<[string, string]>;
    getMeta: Database.Statement<[string], { value: string }>;
    loadPools: Database.Statement<[], PoolEntry & { requiredCount: number | null }>;
    loadMeta: Database.Statement<[], { key: string; value: string }>;
    loadCounters: Database.Statement<[], { name: string; value: number }>;
    count: Database.Statement<[], { n: number }>;
  };
  private readonly historyStmts = new Map<
    number,
    Database.Statement<[Record<string, unknown>], HistoryRow>
  >();
  private readonly commitTx: Database.Transaction<(change: StoreChange) => number>;
  private readonly commitManyTx: Database.Transaction<(changes: StoreChange[]) => number[]>;
  private readonly resetTx: Database.Transaction<(all: boolean) => void>;
  /** INSERT INTO history of n rows, prepared on first use (n ≤ HISTORY_CHUNK). */
  private readonly historyInserts: (Database.Statement<unknown[]> | undefined)[] = [];
  /** Meta values known to be in the file (read by load, set by setMeta and committed changes). */
  private readonly metaWritten = new Map<string, string>();
  /** Meta keys and values written by the transaction under way: [key, value, key, value, …]. */
  private readonly metaPending: string[] = [];
  /** Counter values known to be in the file, and those written by the transaction under way. */
  private readonly countersWritten = new Map<string, number>();
  private readonly countersPending = new Map<string, number>();
  /** Multi-row counter upserts of n rows, prepared on first use (n ≤ COUNTER_CHUNK). */
  private readonly counterUpserts: (Database.Statement<unknown[]> | undefined)[] = [];

  /** `file` is used as given (openStore resolves it and creates its directory). */
  constructor(file: string, opts: StoreOptions = {}) {
    const durability = opts.durability ?? 'normal';
    if (durability !== 'normal' && durability !== 'full') {
      throw new RangeError(`durability must be 'normal' or 'full', got ${String(durability)}`);
    }
    this.path = file;
    const db = new Database(file);
    try {
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      // Refuse foreign or newer files before anything below writes to them.
      checkSchema(db, file);
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`${file}: could not switch to WAL mode (journal_mode is ${mode})`);
      db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma('foreign_keys = OFF');
      // SQLite's own default page cache (2 MB). better-sqlite3 builds with 16 MB, which a host's
      // append-mostly writes fill for nothing: measured the same speed, 15 MB less resident memory.
      db.pragma('cache_size = -2000');
      migrate(db, undefined, file);
    } catch (e) {
      db.close();
      throw e;
    }
    this.db = db;

    this.stmt = {
      remove: db.prepare('DELETE FROM pools WHERE application_id = ? AND cmid = ?'),
      upsert: db.prepare(
        `INSERT INTO pools (application_id, cmid, first_seen, last_seen, workstation, sku_id, kms_id,
           required_count)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (application_id, cmid) DO UPDATE SET first_seen = excluded.first_seen,
           last_seen = excluded.last_seen, workstation = excluded.workstation, sku_id = excluded.sku_id,
           kms_id = excluded.kms_id, required_count = excluded.required_count`,
      ),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?'),
      loadPools: db.prepare(
        `SELECT application_id AS applicationId, cmid, first_seen AS firstSeen, last_seen AS lastSeen,
           workstation, sku_id AS skuId, kms_id AS kmsId, required_count AS requiredCount FROM pools`,
      ),
      loadMeta: db.prepare('SELECT key, value FROM meta'),
      loadCounters: db.prepare('SELECT name, value FROM request_counters'),
      count: db.prepare('SELECT count(*) AS n FROM history'),
    };

    const s = this.stmt;
    // Pool rows and meta first, change by change; then the group's history rows in as few multi-row
    // INSERTs as possible (one statement per HISTORY_CHUNK rows instead of one per row). All of it in
    // one transaction: the durability argument above is unchanged.
    const applyPoolsAndMeta = (change: StoreChange): void => {
      if (change.remove) for (const r of change.remove) s.remove.run(r.applicationId, r.cmid);
      if (change.upsert) {
        for (const e of change.upsert) {
          s.upsert.run(
            e.applicationId,
            e.cmid,
            e.firstSeen,
            e.lastSeen,
            e.workstation,
            e.skuId,
            e.kmsId,
            e.requiredCount ?? null,
          );
        }
      }
      const meta = change.meta;
      if (meta) {
        for (const k in meta) {
          if (!Object.hasOwn(meta, k)) continue;
          const v = meta[k];
          checkMeta(k, v);
          // Meta written only when it changes (a WAL page per commit saved, e.g. the manual clock).
          if (this.metaWritten.get(k) === v) continue;
          s.setMeta.run(k, v as string);
          this.metaPending.push(k, v as string);
        }
      }
      const counters = change.counters;
      if (counters) {
        for (const k in counters) {
          if (!Object.hasOwn(counters, k)) continue;
          const v = counters[k];
          checkCounter(k, v);
          // Like meta: only the counters a request moved are written (the rest of the row set is equal).
          // A later change of the group wins (only its value reaches the file).
          if (this.countersWritten.get(k) === v && !this.countersPending.has(k)) continue;
          this.countersPending.set(k, v as number);
        }
      }
    };
    // The counters the transaction moved (usually 3: total, the LicenseStatus, the decision), in one
    // multi-row upsert per COUNTER_CHUNK rows instead of one statement each.
    const counterValues: unknown[] = [];
    const writeCounters = (): void => {
      const p = this.countersPending;
      if (p.size === 0) return;
      counterValues.length = 0;
      let n = 0;
      for (const [k, v] of p) {
        counterValues.push(k, v);
        if (++n === COUNTER_CHUNK) {
          this.counterUpsert(n).run(counterValues);
          counterValues.length = 0;
          n = 0;
        }
      }
      if (n > 0) this.counterUpsert(n).run(counterValues);
      counterValues.length = 0;
    };
    const values: unknown[] = [];
    const insertHistory = (changes: readonly StoreChange[]): number[] => {
      const seqs = new Array<number>(changes.length).fill(0);
      let i = 0;
      while (i < changes.length) {
        // The next run of up to HISTORY_CHUNK changes that carry a history row.
        values.length = 0;
        const at: number[] = [];
        for (; i < changes.length && at.length < HISTORY_CHUNK; i++) {
          const h = changes[i]!.history;
          if (!h) continue;
          at.push(i);
          values.push(
            h.time,
            h.connectionId,
            h.peer,
            h.cmid,
            h.previousCmid,
            h.applicationId,
            h.skuId,
            h.kmsId,
            h.requiredCount,
            h.count,
            h.wouldActivate ? 1 : 0,
            h.hresult,
            h.protocol,
            h.ndr,
            h.workstation,
            h.epid,
            h.licenseStatus,
            h.vm ? 1 : 0,
            h.fault ?? null,
          );
        }
        if (at.length === 0) continue;
        // `seq INTEGER PRIMARY KEY`: the rows of one INSERT get consecutive rowids, max(seq) + 1 onwards.
        const last = Number(this.historyInsert(at.length).run(values).lastInsertRowid);
        for (let k = 0; k < at.length; k++) seqs[at[k]!] = last - at.length + 1 + k;
      }
      values.length = 0;
      return seqs;
    };
    const applyAll = (changes: readonly StoreChange[]): number[] => {
      this.metaPending.length = 0;
      this.countersPending.clear();
      for (const c of changes) applyPoolsAndMeta(c);
      writeCounters();
      return insertHistory(changes);
    };
    this.commitTx = db.transaction((change: StoreChange) => applyAll([change])[0]!);
    this.commitManyTx = db.transaction((changes: StoreChange[]): number[] => applyAll(changes));

    const clearPools = db.prepare('DELETE FROM pools');
    const clearHistory = db.prepare('DELETE FROM history');
    const clearMeta = db.prepare('DELETE FROM meta');
    const clearCounters = db.prepare('DELETE FROM request_counters');
    this.resetTx = db.transaction((all: boolean) => {
      clearPools.run();
      // With `seq INTEGER PRIMARY KEY` (no AUTOINCREMENT) the next seq is max(seq) + 1, so 1 after this.
      clearHistory.run();
      if (all) {
        clearMeta.run();
        clearCounters.run();
      }
    });
  }

  private historyInsert(n: number): Database.Statement<unknown[]> {
    let st = this.historyInserts[n];
    if (st === undefined) {
      st = this.db.prepare(HISTORY_INSERT + Array.from({ length: n }, () => HISTORY_ROW).join(', '));
      this.historyInserts[n] = st;
    }
    return st;
  }

  private counterUpsert(n: number): Database.Statement<unknown[]> {
    let st = this.counterUpserts[n];
    if (st === undefined) {
      st = this.db.prepare(
        `INSERT INTO request_counters (name, value) VALUES ${Array.from({ length: n }, () => '(?, ?)').join(', ')}
         ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
      );
      this.counterUpserts[n] = st;
    }
    return st;
  }

  /** After a committed transaction: what it wrote to meta is now in the file. */
  private metaCommitted(): void {
    const p = this.metaPending;
    for (let i = 0; i < p.length; i += 2) this.metaWritten.set(p[i]!, p[i + 1]!);
    p.length = 0;
    for (const [k, v] of this.countersPending) this.countersWritten.set(k, v);
    this.countersPending.clear();
  }

  private assertOpen(): void {
    if (!this.db.open) throw new StoreClosedError(this.kind);
  }

  load(): StoreSnapshot {
    this.assertOpen();
    const read = this.db.transaction(() => ({
      pools: this.stmt.loadPools.all(),
      metaRows: this.stmt.loadMeta.all(),
      counterRows: this.stmt.loadCounters.all(),
    }));
    const { pools: rows, metaRows, counterRows } = read();
    // Rows from before schema version 4 have no N_policy: leave the field out, as the memory store does.
    const pools: PoolEntry[] = rows.map(({ requiredCount, ...e }) =>
      requiredCount === null ? e : { ...e, requiredCount },
    );
    pools.sort(comparePoolEntries);
    // fromEntries defines own properties, so a key such as `__proto__` survives.
    const meta: Record<string, string> = Object.fromEntries(metaRows.map((r) => [r.key, r.value]));
    this.metaWritten.clear();
    for (const r of metaRows) this.metaWritten.set(r.key, r.value);
    const counters: Record<string, number> = Object.fromEntries(counterRows.map((r) => [r.name, r.value]));
    this.countersWritten.clear();
    for (const r of counterRows) this.countersWritten.set(r.name, r.value);
    return { pools, meta, counters };
  }

  commit(change: StoreChange): number {
    this.assertOpen();
    // IMMEDIATE: take the write lock up front, so a concurrent reader in another process can never make
    // this transaction fail half-way with SQLITE_BUSY_SNAPSHOT; busy_timeout covers waiting for it.
    try {
      const seq = this.commitTx.immediate(change);
      this.metaCommitted();
      return seq;
    } finally {
      this.metaPending.length = 0;
      this.countersPending.clear();
    }
  }

  /**
   * Group commit: the changes of several requests in one transaction (one WAL commit instead of one
   * each), in order. The durability argument above holds for the group as a whole: the host sends none
   * of the group's responses before this returns (src/host/service.ts commitGroup, src/server/tcp.ts).
   */
  commitMany(changes: StoreChange[]): number[] {
    this.assertOpen();
    try {
      const seqs = this.commitManyTx.immediate(changes);
      this.metaCommitted();
      return seqs;
    } finally {
      this.metaPending.length = 0;
      this.countersPending.clear();
    }
  }

  setMeta(key: string, value: string): void {
    this.assertOpen();
    checkMeta(key, value);
    this.stmt.setMeta.run(key, value);
    this.metaWritten.set(key, value);
  }

  getMeta(key: string): string | undefined {
    this.assertOpen();
    return this.stmt.getMeta.get(key)?.value;
  }

  history(q: HistoryQuery = {}): HistoryRecord[] {
    this.assertOpen();
    checkHistoryQuery(q);
    let mask = 0;
    const params: Record<string, unknown> = {};
    FILTERS.forEach(([key], i) => {
      const v = q[key];
      if (v === undefined) return;
      mask |= 1 << i;
      params[key] = typeof v === 'boolean' ? (v ? 1 : 0) : v;
    });
    let stmt = this.historyStmts.get(mask);
    if (!stmt) {
      const where = FILTERS.flatMap(([, sql], i) => (sql !== null && mask & (1 << i) ? [sql] : []));
      const sql =
        `SELECT ${HISTORY_COLUMNS} FROM history` +
        (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
        ' ORDER BY seq' +
        (q.limit !== undefined ? ' LIMIT @limit' : '');
      stmt = this.db.prepare<[Record<string, unknown>], HistoryRow>(sql);
      this.historyStmts.set(mask, stmt);
    }
    return stmt.all(params).map(rowToRecord);
  }

  historyCount(): number {
    this.assertOpen();
    return this.stmt.count.get()!.n;
  }

  reset(opts: { all?: boolean } = {}): void {
    this.assertOpen();
    this.resetTx.immediate(opts.all === true);
    if (opts.all === true) {
      this.metaWritten.clear();
      this.countersWritten.clear();
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
