/**
 * Store damage at open: 4 KiB overwritten in the middle of a store, a file truncated to zero, a file
 * that is not a database, a path that cannot be opened. Each is refused or reported with the file's
 * name; --move-damaged-store (moveDamaged) renames the damaged file aside, never deletes it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreDamagedError } from '../../../src/store/integrity.js';
import type { SqliteStore } from '../../../src/store/sqlite.js';
import { openStore } from '../../../src/store/store.js';
import { entry, record, removeDir, tempDir } from './helpers.js';

let dir: string;
let file: string;
beforeEach(() => {
  dir = tempDir();
  file = path.join(dir, 'lab.sqlite');
});
afterEach(() => removeDir(dir));

/** A closed store file with `rows` history rows and a few pool entries (checkpointed: no -wal left). */
function makeStore(rows: number): void {
  const s = openStore(file);
  const changes = Array.from({ length: rows }, (_, i) => ({
    ...(i < 20 ? { upsert: [entry(i)] } : {}),
    history: record(i),
  }));
  s.commitMany!(changes);
  s.close();
  expect(fs.existsSync(`${file}-wal`)).toBe(false);
}

function overwriteMiddle(bytes = 4096): void {
  const size = fs.statSync(file).size;
  const at = Math.floor(size / 2 / 4096) * 4096;
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(bytes, 0xa5), 0, bytes, at);
  fs.closeSync(fd);
}

describe('store integrity at open', () => {
  it('refuses a store with 4 KiB overwritten in the middle, naming the file and what to do', () => {
    makeStore(5000);
    expect(fs.statSync(file).size).toBeGreaterThan(64 * 1024);
    overwriteMiddle();
    let err: unknown;
    try {
      openStore(file).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreDamagedError);
    const msg = (err as Error).message;
    expect(msg).toContain(file);
    expect(msg).toMatch(/damaged .*Restore it from a backup, or start with --move-damaged-store/);
  });

  it('with moveDamaged, renames the damaged file aside (same bytes) and starts an empty store', () => {
    makeStore(5000);
    overwriteMiddle();
    const damaged = fs.readFileSync(file);
    const warnings: string[] = [];
    const s = openStore(file, { moveDamaged: true, onWarning: (m) => warnings.push(m) });
    try {
      expect(s.historyCount()).toBe(0);
      expect(s.load().pools).toEqual([]);
    } finally {
      s.close();
    }
    const aside = fs.readdirSync(dir).filter((f) => /^lab\.sqlite\.damaged-\d{8}T\d{6}Z$/.test(f));
    expect(aside).toHaveLength(1);
    expect(fs.readFileSync(path.join(dir, aside[0]!)).equals(damaged)).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(file);
    expect(warnings[0]).toContain(aside[0]);
  });

  it('initialises an existing zero-byte file with a warning naming it', () => {
    makeStore(100);
    fs.truncateSync(file, 0);
    const warnings: string[] = [];
    const s = openStore(file, { onWarning: (m) => warnings.push(m) });
    try {
      expect(s.historyCount()).toBe(0);
    } finally {
      s.close();
    }
    expect(warnings).toEqual([`${file}: the store file is empty (0 bytes); initialising a new store in it`]);
  });

  it('a file that is not a database is refused with the file named', () => {
    fs.writeFileSync(file, Buffer.alloc(8192, 'not sqlite, just text\n'));
    expect(() => openStore(file)).toThrow(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*file is not a database`),
    );
  });

  it('"unable to open database file" names the file', () => {
    fs.mkdirSync(file);
    expect(() => openStore(file)).toThrow(
      /lab\.sqlite: .*unable to open database file|lab\.sqlite.*directory/,
    );
  });

  it('a SQLite error after open names the file; a bad query stays a RangeError', () => {
    makeStore(10);
    const s = openStore(file) as SqliteStore;
    try {
      s.db.exec('DROP TABLE history');
      expect(() => s.history()).toThrow(`${file}: no such table: history`);
      expect(() => s.history({ limit: -1 })).toThrow(RangeError);
    } finally {
      s.close();
    }
  });
});
