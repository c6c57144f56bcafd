/** SqliteStore specifics: persistence, pragmas, crash durability, paths. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../src/store/sqlite.js';
import { DEFAULT_STORE_PATH, openStore } from '../../../src/store/store.js';
import { APP_OFFICE, cmid, entry, record, removeDir, tempDir } from './helpers.js';

let dir: string;
let file: string;

beforeEach(() => {
  dir = tempDir();
  file = path.join(dir, 'kmslab.sqlite');
});
afterEach(() => removeDir(dir));

function sqlite(f = file, durability?: 'normal' | 'full'): SqliteStore {
  const s = openStore(f, durability ? { durability } : {});
  expect(s).toBeInstanceOf(SqliteStore);
  return s as SqliteStore;
}

describe('SqliteStore', () => {
  it('keeps pools, history, meta and the seq counter across close and reopen', () => {
    const a = sqlite();
    a.setMeta('epid.win', '06401-00206-551-000000-03-1033-17763.0000-1232024');
    a.setMeta('clock', '1700000000000');
    for (let n = 1; n <= 30; n++) a.commit({ upsert: [entry(n)], history: record(n) });
    a.commit({ remove: [{ applicationId: entry(1).applicationId, cmid: cmid(1) }], history: record(31) });
    a.commit({ upsert: [entry(7, { applicationId: APP_OFFICE })] });
    const before = { snap: a.load(), history: a.history() };
    a.close();

    const b = sqlite();
    expect(b.load()).toEqual(before.snap);
    expect(b.load().pools).toHaveLength(30);
    expect(b.history()).toEqual(before.history);
    expect(b.historyCount()).toBe(31);
    expect(b.commit({ history: record(32) })).toBe(32);
    b.close();
  });

  it('runs in WAL mode with the requested durability and the other pragmas', () => {
    const s = sqlite();
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(s.db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(s.db.pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(s.db.pragma('foreign_keys', { simple: true })).toBe(0);
    // SQLite's stock 2 MB page cache, not better-sqlite3's 16 MB build default (resident memory).
    expect(s.db.pragma('cache_size', { simple: true })).toBe(-2000);
    s.close();
    const full = sqlite(file, 'full');
    expect(full.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(full.db.pragma('journal_mode', { simple: true })).toBe('wal');
    full.close();
    expect(() => openStore(file, { durability: 'extra' as 'full' })).toThrow(/durability/);
  });

  it('indexes history by time (not by cmid: a WAL page per commit) and keys pools by (application, cmid)', () => {
    const s = sqlite();
    const plan = (sql: string) =>
      (s.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[])
        .map((r) => r.detail)
        .join('; ');
    expect(plan('SELECT * FROM history WHERE time >= 1 AND time <= 2')).toMatch(/INDEX history_time/);
    expect(plan("SELECT * FROM history WHERE cmid = 'x' ORDER BY seq")).toMatch(/^SCAN history$/);
    expect(plan("SELECT * FROM pools WHERE application_id = 'a' AND cmid = 'c'")).toMatch(/PRIMARY KEY/);
    s.close();
  });

  it('commits a group of history rows in multi-row inserts with consecutive seqs, in staging order', () => {
    const s = sqlite();
    expect(s.commit({ history: record(1) })).toBe(1);
    // 40 changes (more than one INSERT's worth), every third without a history row.
    const changes = Array.from({ length: 40 }, (_, i) =>
      i % 3 === 2 ? { upsert: [entry(100 + i)] } : { upsert: [entry(100 + i)], history: record(100 + i) },
    );
    const seqs = s.commitMany(changes);
    const withHistory = changes.map((c, i) => (c.history ? i : -1)).filter((i) => i >= 0);
    expect(seqs.filter((q, i) => changes[i]!.history === undefined && q !== 0)).toEqual([]);
    expect(withHistory.map((i) => seqs[i])).toEqual(withHistory.map((_, k) => 2 + k));
    const rows = s.history({ sinceSeq: 1 });
    expect(rows.map((r) => r.cmid)).toEqual(withHistory.map((i) => record(100 + i).cmid));
    expect(rows.map((r) => r.seq)).toEqual(withHistory.map((i) => seqs[i]));
    expect(s.load().pools).toHaveLength(40);
    s.close();
  });

  it('writes a meta key only when its value changes, and reads back what was committed', () => {
    const s = sqlite();
    // Rows written by INSERT/UPDATE/DELETE on this connection so far.
    const written = () => (s.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
    s.commit({ history: record(1), meta: { clock: '1' } });
    const a = written();
    s.commit({ meta: { clock: '1' } }); // unchanged: nothing to write
    expect(written()).toBe(a);
    s.commit({ meta: { clock: '2' } });
    expect(written()).toBeGreaterThan(a);
    expect(s.getMeta('clock')).toBe('2');
    // A failed transaction does not make the cache believe its value was written.
    expect(() =>
      s.commitMany([{ meta: { clock: '3' } }, { history: { ...record(2), ndr: 'bad' as 'ndr32' } }]),
    ).toThrow();
    expect(s.getMeta('clock')).toBe('2');
    s.commit({ meta: { clock: '3' } });
    expect(s.getMeta('clock')).toBe('3');
    s.reset({ all: true });
    s.commit({ meta: { clock: '3' } });
    expect(s.getMeta('clock')).toBe('3');
    s.close();
    const b = sqlite();
    expect(b.load().meta.clock).toBe('3');
    b.close();
  });

  it('refuses to update history rows (append-only)', () => {
    const s = sqlite();
    s.commit({ history: record(1) });
    expect(() => s.db.prepare('UPDATE history SET count = 99').run()).toThrow(/append-only/);
    s.close();
  });

  it('rolls back a commit that fails part-way', () => {
    const s = sqlite();
    s.commit({ upsert: [entry(1)], history: record(1) });
    const bad = { ...record(2), ndr: 'ndr16' as 'ndr32' };
    expect(() =>
      s.commit({
        upsert: [entry(2)],
        remove: [{ applicationId: entry(1).applicationId, cmid: cmid(1) }],
        history: bad,
      }),
    ).toThrow();
    expect(s.load().pools.map((e) => e.cmid)).toEqual([cmid(1)]);
    expect(s.historyCount()).toBe(1);
    expect(s.commit({ history: record(3) })).toBe(2);
    s.close();
  });

  it('sees commits made through another connection after reopen while the file is shared', () => {
    const a = sqlite();
    a.commit({ upsert: [entry(1)], history: record(1) });
    const reader = new Database(file, { readonly: true });
    expect((reader.prepare('SELECT count(*) AS n FROM history').get() as { n: number }).n).toBe(1);
    a.commit({ history: record(2) });
    expect((reader.prepare('SELECT count(*) AS n FROM history').get() as { n: number }).n).toBe(2);
    reader.close();
    a.close();
  });

  it('creates missing parent directories', () => {
    const nested = path.join(dir, 'a', 'b', 'store.sqlite');
    const s = sqlite(nested);
    expect(s.path).toBe(nested);
    expect(fs.existsSync(nested)).toBe(true);
    s.close();
  });

  it('defaults to data/kmslab.sqlite under the working directory', () => {
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const s = openStore(DEFAULT_STORE_PATH);
      expect(s.path).toBe(path.join(fs.realpathSync(dir), 'data', 'kmslab.sqlite'));
      expect(fs.existsSync(path.join(dir, 'data', 'kmslab.sqlite'))).toBe(true);
      s.close();
    } finally {
      process.chdir(cwd);
    }
  });

  it('maps "memory" to the memory store and refuses an empty path', () => {
    expect(openStore('memory').kind).toBe('memory');
    expect(openStore(':memory:').kind).toBe('memory');
    expect(() => openStore('')).toThrow(/empty/);
  });
});

describe.each(['normal', 'full'] as const)('crash durability (synchronous=%s)', (durability) => {
  it('every seq answered before SIGKILL is in the reopened store', async () => {
    const child = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
    const proc = spawn(process.execPath, ['--import', 'tsx', child, file, durability], {
      cwd: path.resolve(path.dirname(child), '../../..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const target = durability === 'full' ? 50 : 300;
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => {
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.split('\n').length > target && proc.exitCode === null && !proc.killed) proc.kill('SIGKILL');
      });
      proc.on('exit', (_code, sig) => resolve(sig));
    });
    expect(err).toBe('');
    expect(signal).toBe('SIGKILL');
    const answered = out
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
    expect(answered.length).toBeGreaterThanOrEqual(target);
    const last = answered[answered.length - 1]!;
    expect(answered).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    // Killed without close(): the commits are (at least partly) still only in the WAL.
    expect(fs.existsSync(`${file}-wal`)).toBe(true);

    const s = sqlite();
    expect(s.historyCount()).toBeGreaterThanOrEqual(last);
    const pools = new Set(s.load().pools.map((e) => e.cmid));
    for (let n = 1; n <= last; n++) expect(pools.has(cmid(n))).toBe(true);
    expect(s.history({ to: Number.MAX_SAFE_INTEGER, limit: last }).map((r) => r.seq)).toEqual(answered);
    expect(Number(s.getMeta('requests'))).toBeGreaterThanOrEqual(last);
    expect(s.getMeta('epid')).toBe('child');
    s.close();
  });
});
