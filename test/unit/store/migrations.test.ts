/** Schema versioning: the migration path, and files we must refuse. */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { APPLICATION_ID, MIGRATIONS, migrate, SCHEMA_VERSION } from '../../../src/store/migrations.js';
import type { SqliteStore } from '../../../src/store/sqlite.js';
import { openStore } from '../../../src/store/store.js';
import { cmid, record, removeDir, tempDir } from './helpers.js';

let dir: string;
let file: string;

beforeEach(() => {
  dir = tempDir();
  file = path.join(dir, 'kmslab.sqlite');
});
afterEach(() => removeDir(dir));

function raw(f = file): Database.Database {
  return new Database(f);
}

const version = (db: Database.Database) => db.pragma('user_version', { simple: true }) as number;
const columns = (db: Database.Database, table: string) =>
  (db.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[]).map(
    (c) => c.name,
  );
const schema = (db: Database.Database) =>
  db
    .prepare(
      "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .all();

/** A version-1 file as kmslab 1 would have written it, with some data in it. */
function buildV1(): void {
  const db = raw();
  db.pragma('journal_mode = WAL');
  db.exec(MIGRATIONS[0]!.sql as string);
  db.pragma('user_version = 1');
  db.pragma(`application_id = ${APPLICATION_ID}`);
  db.prepare(
    `INSERT INTO pools (application_id, cmid, first_seen, last_seen, workstation, sku_id, kms_id)
     VALUES ('app', ?, 1000, 2000, 'WS-1', 'sku', 'kms')`,
  ).run(cmid(1));
  db.prepare(
    `INSERT INTO history (time, connection_id, peer, cmid, previous_cmid, application_id, sku_id, kms_id,
       required_count, count, would_activate, hresult, protocol, ndr, workstation, epid, license_status, vm)
     VALUES (5000, 7, '192.0.2.1:50000', ?, '', 'app', 'sku', 'kms', 25, 26, 1, 0, 6, 'ndr64', 'WS-1', 'EPID', 2, 1)`,
  ).run(cmid(1));
  db.prepare("INSERT INTO meta (key, value) VALUES ('epid.app', 'EPID')").run();
  // The decision totals as kmslab kept them in meta before schema version 5.
  db.prepare(
    `INSERT INTO meta (key, value) VALUES ('requestTotals', '{"requests":1,"byResult":{"activated":1}}')`,
  ).run();
  expect(columns(db, 'history')).not.toContain('fault');
  db.close();
}

describe('migrations', () => {
  it('are numbered 1..SCHEMA_VERSION with at least two steps', () => {
    expect(MIGRATIONS.length).toBeGreaterThanOrEqual(2);
    expect(MIGRATIONS.map((m) => m.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
  });

  it('a fresh file is created at the current version and marked as ours', () => {
    const s = openStore(file) as SqliteStore;
    expect(version(s.db)).toBe(SCHEMA_VERSION);
    expect(s.db.pragma('application_id', { simple: true })).toBe(APPLICATION_ID);
    s.close();
  });

  it('opens a v1 file, migrates it forward and keeps its data', () => {
    buildV1();
    const s = openStore(file) as SqliteStore;
    expect(version(s.db)).toBe(SCHEMA_VERSION);
    expect(columns(s.db, 'history')).toContain('fault');
    expect(s.load()).toEqual({
      pools: [
        {
          applicationId: 'app',
          cmid: cmid(1),
          firstSeen: 1000,
          lastSeen: 2000,
          workstation: 'WS-1',
          skuId: 'sku',
          kmsId: 'kms',
        },
      ],
      meta: { 'epid.app': 'EPID' },
      // Seeded from the history the file held: one decoded request, LicenseStatus 2 (OOB grace).
      // requestTotals moved from meta to the counters.
      counters: { 'requests.total': 1, 'requests.oobGrace': 1, 'decisions.activated': 1 },
    });
    expect(s.history()).toStrictEqual([
      {
        seq: 1,
        time: 5000,
        connectionId: 7,
        peer: '192.0.2.1:50000',
        cmid: cmid(1),
        previousCmid: '',
        applicationId: 'app',
        skuId: 'sku',
        kmsId: 'kms',
        requiredCount: 25,
        count: 26,
        wouldActivate: true,
        hresult: 0,
        protocol: 6,
        ndr: 'ndr64',
        workstation: 'WS-1',
        epid: 'EPID',
        licenseStatus: 2,
        vm: true,
      },
    ]);
    expect(s.commit({ history: record(2, { fault: 'truncate' }) })).toBe(2);
    expect(s.history({ sinceSeq: 1 })[0]!.fault).toBe('truncate');
    // The migrated schema is exactly what a fresh file gets.
    const fresh = openStore(path.join(dir, 'fresh.sqlite')) as SqliteStore;
    expect(schema(s.db)).toEqual(schema(fresh.db));
    fresh.close();
    s.close();
  });

  it('a version-3 file of either lineage reaches the same schema (index dropped, required_count added)', () => {
    // main's version 3 dropped history_cmid; a development build of issue 15 numbered
    // pools.required_count 3 instead (index kept). Both must end as a fresh file.
    const fresh = openStore(path.join(dir, 'fresh.sqlite')) as SqliteStore;
    for (const lineage of ['index-dropped', 'required-count'] as const) {
      buildV1();
      const db = raw();
      migrate(db, 2);
      if (lineage === 'index-dropped') db.exec('DROP INDEX history_cmid');
      else db.exec('ALTER TABLE pools ADD COLUMN required_count INTEGER');
      db.pragma('user_version = 3');
      db.close();
      const s = openStore(file) as SqliteStore;
      expect(version(s.db)).toBe(SCHEMA_VERSION);
      expect(schema(s.db)).toEqual(schema(fresh.db));
      expect(s.load().pools.map((e) => e.cmid)).toEqual([cmid(1)]);
      s.close();
      for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    }
    fresh.close();
  });

  it('migrate() can stop at an intermediate version and continue later', () => {
    const db = raw();
    expect(migrate(db, 1)).toEqual({ from: 0, to: 1 });
    expect(version(db)).toBe(1);
    expect(migrate(db)).toEqual({ from: 1, to: SCHEMA_VERSION });
    expect(migrate(db)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
    expect(() => migrate(db, 1)).toThrow(/cannot migrate down/);
    expect(() => migrate(db, SCHEMA_VERSION + 1)).toThrow(RangeError);
    db.close();
  });

  it('a failing migration leaves the file at its old version, untouched', () => {
    buildV1();
    const db = raw();
    db.exec('CREATE INDEX history_time ON history (time)'); // v2 will collide with this
    db.close();
    expect(() => openStore(file)).toThrow(/history_time/);
    const after = raw();
    expect(version(after)).toBe(1);
    expect(columns(after, 'history')).not.toContain('fault');
    expect((after.prepare('SELECT count(*) AS n FROM pools').get() as { n: number }).n).toBe(1);
    after.close();
  });

  it('refuses a file with a newer schema, without changing it', () => {
    openStore(file).close();
    const db = raw();
    db.pragma('journal_mode = DELETE');
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openStore(file)).toThrow(
      new RegExp(
        `schema version ${SCHEMA_VERSION + 1} is newer than this kmslab understands \\(${SCHEMA_VERSION}\\)`,
      ),
    );
    const after = raw();
    expect(version(after)).toBe(SCHEMA_VERSION + 1);
    expect(after.pragma('journal_mode', { simple: true })).toBe('delete');
    after.close();
  });

  it('refuses a database that is not a kmslab store', () => {
    const db = raw();
    db.exec('CREATE TABLE other (x)');
    db.close();
    expect(() => openStore(file)).toThrow(/not a kmslab store/);

    const other = path.join(dir, 'other.sqlite');
    const db2 = raw(other);
    db2.pragma('application_id = 1234');
    db2.close();
    expect(() => openStore(other)).toThrow(/not a kmslab store \(application_id 0x4d2/);
  });
});
