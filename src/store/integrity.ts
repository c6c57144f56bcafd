/**
 * Opening a SQLite store file safely: a damaged file is refused (with its name and what to do), never
 * served half-working; an existing zero-byte file is initialised with a warning naming it; every
 * error names the file. With `moveDamaged`, a damaged file (and its -wal/-shm) is renamed aside,
 * never deleted, and an empty store starts in its place.
 *
 * The check is `PRAGMA quick_check(1)`: every b-tree page's structure and every record's format, stopping
 * at the first problem. It reads the whole file once: 0.5-0.8 s for a store at the default
 * retention (1,000,000 rows, 333 MB) on a busy 2-core machine (docs/robustness.md §9), once per start.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { nameStoreError } from './common.js';
import { SqliteStore } from './sqlite.js';
import type { StoreOptions } from './store.js';

/** SQLite's words for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB). */
const DAMAGE_CODES = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB']);

export class StoreDamagedError extends Error {
  override readonly name = 'StoreDamagedError';
  constructor(
    readonly file: string,
    detail: string,
  ) {
    // quick_check's report spans lines ("*** in database main ***\nTree 3 page 206: ..."): one line here.
    const what = detail
      .replace(/\*\*\* in database \w+ \*\*\*/, '')
      .replace(/\s+/g, ' ')
      .trim();
    super(
      `${file}: the store is damaged (${what}). Restore it from a backup, or start with ` +
        '--move-damaged-store to move it aside (renamed, not deleted) and begin an empty store',
    );
  }
}

function isDamage(e: unknown): boolean {
  return DAMAGE_CODES.has(String((e as { code?: unknown }).code));
}

/** null when the file passes `quick_check`, else what SQLite reported first. */
function quickCheck(file: string): string | null {
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { fileMustExist: true });
    const rows = db.pragma('quick_check(1)') as { quick_check: string }[];
    const first = rows[0]?.quick_check ?? 'no answer';
    return first === 'ok' ? null : first;
  } catch (e) {
    if (isDamage(e)) return (e as Error).message;
    throw nameStoreError(file, e);
  } finally {
    db?.close();
  }
}

/** The name a damaged file is moved to: FILE.damaged-20260101T000000Z (a counter if that exists). */
function asideName(file: string, now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  let name = `${file}.damaged-${stamp}`;
  for (let i = 2; fs.existsSync(name); i++) name = `${file}.damaged-${stamp}-${i}`;
  return name;
}

/** Opens (or creates) the store at `file` (absolute; its directory exists) after checking it. */
export function openCheckedSqliteStore(file: string, opts: StoreOptions = {}): SqliteStore {
  const warn = opts.onWarning ?? (() => {});
  const size = fs.statSync(file, { throwIfNoEntry: false })?.size;
  if (size === 0) warn(`${file}: the store file is empty (0 bytes); initialising a new store in it`);
  const damage = size ? quickCheck(file) : null;
  if (damage !== null) {
    if (!opts.moveDamaged) throw new StoreDamagedError(file, damage);
    const aside = asideName(file, new Date());
    fs.renameSync(file, aside);
    for (const ext of ['-wal', '-shm']) {
      if (fs.existsSync(file + ext)) fs.renameSync(file + ext, aside + ext);
    }
    warn(`${file}: the store was damaged (${damage}); moved it to ${aside} and started an empty store`);
  }
  try {
    return nameErrors(new SqliteStore(file, opts));
  } catch (e) {
    if (isDamage(e)) throw new StoreDamagedError(file, (e as Error).message);
    throw nameStoreError(file, e);
  }
}

const STORE_METHODS = [
  'load',
  'commit',
  'commitMany',
  'setMeta',
  'getMeta',
  'history',
  'historyCount',
  'reset',
] as const;

/** Every error the store's methods throw names its file (see nameStoreError). */
function nameErrors(store: SqliteStore): SqliteStore {
  const file = store.path;
  for (const m of STORE_METHODS) {
    const f = store[m] as (...a: unknown[]) => unknown;
    Object.defineProperty(store, m, {
      value: (...a: unknown[]) => {
        try {
          return f.apply(store, a);
        } catch (e) {
          throw nameStoreError(file, e);
        }
      },
    });
  }
  return store;
}
