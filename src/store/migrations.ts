/**
 * Schema versions of the SQLite store. The version lives in the database header (`PRAGMA
 * user_version`), the file is marked as ours with `PRAGMA application_id`. Opening a file runs every
 * migration newer than its version, in order, in one IMMEDIATE transaction (so a crash mid-migration
 * leaves the old version intact, and two processes opening the same old file do not both migrate it).
 *
 * Rules for adding a migration: append to MIGRATIONS with the next version number; never edit a
 * released one (files in the field were built by it); keep it pure SQL that works inside a
 * transaction (no VACUUM, no journal_mode changes).
 */
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  /**
   * The SQL to run; a function of the database only where a file may already hold part of the change
   * (SQLite has no ADD COLUMN IF NOT EXISTS).
   */
  sql: string | ((db: Database.Database) => string);
}

function hasColumn(db: Database.Database, table: string, column: string): boolean {
  const cols = db.pragma(`table_info(${table})`) as { name: string }[];
  return cols.some((c) => c.name === column);
}

/** 'KMSL', stored in the header at offset 68 so `file(1)`-style checks and we can recognise our files. */
export const APPLICATION_ID = 0x4b4d534c;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'pools, history, meta',
    sql: `
      CREATE TABLE pools (
        application_id TEXT NOT NULL,
        cmid TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        workstation TEXT NOT NULL,
        sku_id TEXT NOT NULL,
        kms_id TEXT NOT NULL,
        PRIMARY KEY (application_id, cmid)
      ) WITHOUT ROWID;

      CREATE TABLE history (
        seq INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,
        connection_id INTEGER NOT NULL,
        peer TEXT NOT NULL,
        cmid TEXT NOT NULL,
        previous_cmid TEXT NOT NULL,
        application_id TEXT NOT NULL,
        sku_id TEXT NOT NULL,
        kms_id TEXT NOT NULL,
        required_count INTEGER NOT NULL,
        count INTEGER NOT NULL,
        would_activate INTEGER NOT NULL CHECK (would_activate IN (0, 1)),
        hresult INTEGER NOT NULL,
        protocol INTEGER NOT NULL,
        ndr TEXT NOT NULL CHECK (ndr IN ('ndr32', 'ndr64')),
        workstation TEXT NOT NULL,
        epid TEXT NOT NULL,
        license_status INTEGER NOT NULL,
        vm INTEGER NOT NULL CHECK (vm IN (0, 1))
      );

      CREATE TRIGGER history_append_only BEFORE UPDATE ON history
      BEGIN
        SELECT RAISE(ABORT, 'history is append-only');
      END;

      CREATE TABLE meta (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    name: 'history.fault column; history indexes on time and cmid',
    sql: `
      ALTER TABLE history ADD COLUMN fault TEXT;
      CREATE INDEX history_time ON history (time);
      CREATE INDEX history_cmid ON history (cmid, seq);
    `,
  },
  {
    version: 3,
    // Every commit inserted into this index at a random place (CMIDs are random): one more B-tree leaf,
    // one more WAL page (4 KB, two pwrite calls) per commit, ~8 µs of the host's ~50 µs per commit.
    // History queries by CMID are rare (the control API's ?cmid=) and now scan the retained history.
    name: 'drop the history_cmid index (a WAL page per commit for a rare query)',
    sql: `
      DROP INDEX history_cmid;
    `,
  },
  {
    version: 4,
    // NULL on rows written before: the host then takes the N_policy of the row's KMS id from the
    // catalog (src/host/service.ts). A development build numbered this migration 3 (before the index
    // drop above took that number): a file it wrote is at version 3 with the column and the index, so
    // the column is added only where missing and the index dropped if it is still there.
    name: 'pools.required_count (N_policy of the latest request: the capacity follows its maximum)',
    sql: (db) => `
      DROP INDEX IF EXISTS history_cmid;
      ${hasColumn(db, 'pools', 'required_count') ? '' : 'ALTER TABLE pools ADD COLUMN required_count INTEGER;'}
    `,
  },
  {
    version: 5,
    // The host's cumulative counters (src/host/counters.ts), one row per counter: the request counters
    // slmgr /dlv and WMI report, never pruned, and the decision totals that lived in meta
    // (requestTotals, rewritten on every commit; a request now rewrites the few rows it moved, in one
    // page of this small table). A file from before has no counters: they are seeded from the history
    // it holds (every history row is a decoded request; a request that did not decode left none).
    name: 'request_counters (cumulative request counters, never pruned)',
    sql: `
      CREATE TABLE request_counters (
        name TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL CHECK (value >= 0)
      ) WITHOUT ROWID;

      INSERT INTO request_counters (name, value)
        SELECT 'decisions.' || j.key, j.value FROM meta, json_each(meta.value, '$.byResult') AS j
        WHERE meta.key = 'requestTotals' AND json_valid(meta.value) AND j.type = 'integer' AND j.value >= 0;
      DELETE FROM meta WHERE key = 'requestTotals';

      INSERT INTO request_counters (name, value)
        SELECT 'requests.total', count(*) FROM history
        UNION ALL SELECT 'requests.failed', count(*) FROM history WHERE hresult <> 0
        UNION ALL SELECT 'requests.unlicensed', count(*) FROM history WHERE license_status = 0
        UNION ALL SELECT 'requests.licensed', count(*) FROM history WHERE license_status = 1
        UNION ALL SELECT 'requests.oobGrace', count(*) FROM history WHERE license_status = 2
        UNION ALL SELECT 'requests.ootGrace', count(*) FROM history WHERE license_status = 3
        UNION ALL SELECT 'requests.nonGenuineGrace', count(*) FROM history WHERE license_status = 4
        UNION ALL SELECT 'requests.notification', count(*) FROM history WHERE license_status = 5
        UNION ALL SELECT 'requests.extendedGrace', count(*) FROM history WHERE license_status = 6
        UNION ALL SELECT 'requests.otherLicenseStatus', count(*) FROM history
          WHERE license_status NOT BETWEEN 0 AND 6;
      DELETE FROM request_counters WHERE value = 0;
    `,
  },
];

function checkMigrations(list: readonly Migration[]): number {
  list.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(`migrations: entry ${i} has version ${m.version}, expected ${i + 1}`);
  });
  return list.length;
}

/** The version this code writes and understands. */
export const SCHEMA_VERSION: number = checkMigrations(MIGRATIONS);

function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

class SchemaError extends Error {
  override readonly name = 'SchemaError';
}

/**
 * Refuses files that are not ours or are newer than this code. Read-only: safe to call before
 * anything (such as switching to WAL) modifies the file.
 */
export function checkSchema(db: Database.Database, file: string): number {
  const appId = db.pragma('application_id', { simple: true }) as number;
  const version = schemaVersion(db);
  if (appId !== 0 && appId !== APPLICATION_ID) {
    throw new SchemaError(
      `${file}: not a kmslab store (application_id 0x${(appId >>> 0).toString(16)}, expected 0x${APPLICATION_ID.toString(16)})`,
    );
  }
  if (version > SCHEMA_VERSION) {
    throw new SchemaError(
      `${file}: store schema version ${version} is newer than this kmslab understands (${SCHEMA_VERSION}); ` +
        'upgrade kmslab or use another store file',
    );
  }
  if (version === 0) {
    const { n } = db.prepare('SELECT count(*) AS n FROM sqlite_schema').get() as { n: number };
    if (n > 0)
      throw new SchemaError(`${file}: not a kmslab store (unversioned database with ${n} schema objects)`);
  }
  return version;
}

/**
 * Brings the database to `target` (default: SCHEMA_VERSION) in one IMMEDIATE transaction. The version
 * is re-read inside the transaction so a concurrent opener that migrated first is respected.
 */
export function migrate(
  db: Database.Database,
  target: number = SCHEMA_VERSION,
  file = db.name,
): { from: number; to: number } {
  if (!Number.isInteger(target) || target < 1 || target > SCHEMA_VERSION) {
    throw new RangeError(`migrate: target ${target} outside 1..${SCHEMA_VERSION}`);
  }
  const run = db.transaction(() => {
    const from = checkSchema(db, file);
    if (from > target) throw new SchemaError(`${file}: at version ${from}, cannot migrate down to ${target}`);
    for (const m of MIGRATIONS) {
      if (m.version <= from || m.version > target) continue;
      db.exec(typeof m.sql === 'string' ? m.sql : m.sql(db));
      db.pragma(`user_version = ${m.version}`);
    }
    if (from < target) db.pragma(`application_id = ${APPLICATION_ID}`);
    return { from, to: target };
  });
  return run.immediate();
}
