/**
 * `npx tsx bench/sqlite-write.ts [--commits N] [--group N] [--no-counters] [--autocheckpoint PAGES]`: the
 * SQLite store's write path alone — what one group commit of `group` V6-like changes (with the host's
 * cumulative counters on the last change, as service.ts commits them: the full row set, of which a commit
 * moves three; --no-counters without) costs in CPU µs per commit and per change, and how many WAL frames
 * (pages) a commit writes (with autocheckpoints off, unless --autocheckpoint), on a fresh file in a
 * temporary directory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { counterRows, emptyCounters } from '../src/host/counters.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { StoreChange } from '../src/store/store.js';
import { num, parseArgs } from './common.js';

const { flags } = parseArgs(process.argv.slice(2));
const commits = num(flags['commits'], 20_000);
const group = num(flags['group'], 1);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmslab-sqlite-write-'));
const store = new SqliteStore(path.join(dir, 'w.sqlite'));
const app = '55c92734-d682-4d71-983e-d6ec3f16059f';
const cmids = Array.from(
  { length: 4096 },
  (_, i) => `${i.toString(16).padStart(8, '0')}-1111-4222-8333-444455556666`,
);
let n = 0;
function change(): StoreChange {
  const cmid = cmids[n++ % cmids.length]!;
  const t = 1_800_000_000_000 + n;
  return {
    upsert: [
      {
        applicationId: app,
        cmid,
        firstSeen: t - 1000,
        lastSeen: t,
        workstation: 'WS-0001.lab',
        skuId: app,
        kmsId: app,
      },
    ],
    remove: [],
    history: {
      time: t,
      connectionId: n,
      peer: '127.0.0.1:50000',
      cmid,
      previousCmid: '00000000-0000-0000-0000-000000000000',
      applicationId: app,
      skuId: app,
      kmsId: app,
      requiredCount: 25,
      count: 50,
      wouldActivate: true,
      hresult: 0,
      protocol: 6,
      ndr: 'ndr64',
      workstation: 'WS-0001.lab',
      epid: '03612-00206-570-582687-03-1033-17763.0000-3242022',
      licenseStatus: 2,
      vm: false,
    },
  };
}
const noCounters = flags['no-counters'] === true;
const counters = { ...emptyCounters(), licensed: 0 };
const totals = { requests: 0, byResult: { activated: 0 } };
/** What the host's commit carries after `group` more licensed, activated requests. */
function moveCounters(): Record<string, number> {
  counters.total += group;
  counters.licensed += group;
  totals.requests += group;
  totals.byResult.activated += group;
  return counterRows(counters, totals);
}
const walFrames = () => (store.db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[])[0]!.log;
for (let i = 0; i < 2000; i++) {
  const cs = Array.from({ length: group }, change);
  cs[group - 1]!.counters = moveCounters();
  store.commitMany(cs);
}
store.db.pragma('wal_checkpoint(TRUNCATE)');
store.db.pragma(
  `wal_autocheckpoint = ${flags['autocheckpoint'] === undefined ? 0 : num(flags['autocheckpoint'], 1000)}`,
);
const c0 = process.cpuUsage();
for (let i = 0; i < commits; i++) {
  const cs = Array.from({ length: group }, change);
  if (!noCounters) cs[group - 1]!.counters = moveCounters();
  store.commitMany(cs);
}
const c = process.cpuUsage(c0);
const frames = flags['autocheckpoint'] === undefined ? walFrames() : 0;
const us = (c.user + c.system) / commits;
console.log(
  JSON.stringify({
    commits,
    group,
    usPerCommit: +us.toFixed(1),
    usPerChange: +(us / group).toFixed(1),
    walFramesPerCommit: +(frames / commits).toFixed(2),
  }),
);
store.close();
fs.rmSync(dir, { recursive: true, force: true });
