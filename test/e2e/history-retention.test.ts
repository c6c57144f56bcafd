/**
 * History retention under a flood, in virtual time: a host on a SQLite file with a manual clock and
 * `--history-limit 1000 --history-days 3` takes thousands of requests over eight host-clock days
 * (heavy days over the row bound alone, light days that only the age bound trims). At every history
 * row the SQLite history stays within its row bound plus the pruner's pass interval (500 rows); after
 * each day it is within both bounds, and the pools and the cumulative request counters are exactly
 * what they would be without pruning. The clock moves through the control API, as a lab bench's would.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRuntimeOptions } from '../../src/cli/serve.js';
import type { ServeConfig } from '../../src/cli/serve-config.js';
import { activate } from '../../src/client/client.js';
import { DAY } from '../../src/host/clock.js';
import { SeededRandom } from '../../src/host/random.js';
import { type HostRuntime, startHostRuntime } from '../../src/server/runtime.js';

const LIMIT = 1000;
const DAYS = 3;
/** HistoryPruner's default rows between passes: the most the row bound is passed by. */
const PASS_EVERY = 500;
/** Requests per host-clock day: heavy days pass the row bound within the day, light ones never. */
/** Rows a sequential client may get written while a pass's batches run (a handful, in practice 0-2). */
const SLACK = 50;
const PLAN = [1500, 200, 200, 200, 200, 1500, 200, 200];
const PRODUCT = 'Windows Server 2022 Standard';

const dir = mkdtempSync(path.join(tmpdir(), 'kmslab-retention-'));
let rt: HostRuntime;
let config: ServeConfig;
let control: string;
/** The largest history row count seen right after any row was written. */
let peak = 0;

async function flood(workstation: string, requests: number) {
  const kms = rt.addresses[0]!;
  const results = await activate({
    host: kms.host,
    port: kms.port,
    product: PRODUCT,
    workstation,
    requests,
    random: new SeededRandom(workstation),
    clock: rt.clock,
    timeoutMs: 30_000,
  });
  expect(results).toHaveLength(requests);
  expect(results.filter((r) => r.error !== undefined)).toEqual([]);
}

async function status() {
  const r = await fetch(`${control}/status`);
  return (await r.json()) as {
    time: string;
    pools: { name: string; count: number }[];
    requestCounters: { total: number };
  };
}

beforeAll(async () => {
  config = {
    store: path.join(dir, 'kmslab.sqlite'),
    listen: ['127.0.0.1:0'],
    control: '127.0.0.1:0',
    clock: 'manual',
    seed: 13,
    historyLimit: LIMIT,
    historyDays: DAYS,
  } as ServeConfig;
  rt = await startHostRuntime(buildRuntimeOptions(config));
  control = `http://127.0.0.1:${rt.control!.address.port}`;
  rt.service.onEvent(() => {
    peak = Math.max(peak, rt.store.historyCount());
  });
});

afterAll(async () => {
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SQLite history under a flood (manual clock)', () => {
  it('stays within --history-limit and --history-days; pools and cumulative counters untouched', async () => {
    expect(rt.store.kind).toBe('sqlite');
    // Four machines that activate once, on day 0: pruning their rows must not take them from the pool.
    for (const w of ['SRV-1', 'SRV-2', 'SRV-3', 'SRV-4']) await flood(w, 1);
    let sent = 4;
    for (const [day, requests] of PLAN.entries()) {
      if (day > 0) {
        const r = await fetch(`${control}/clock/advance`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ days: 1 }),
        });
        expect(r.status).toBe(200);
      }
      // One flooding client, one connection, the same CMID over and over.
      await flood('FLOOD', requests);
      sent += requests;
      await rt.pruner!.idle();
      const rows = rt.store.history();
      const now = rt.clock.now();
      // At any moment: the row bound, plus the rows up to the next pass, plus the few that one
      // sequential client gets answered while that pass's batches run.
      expect(peak, `day ${day}`).toBeLessThanOrEqual(LIMIT + PASS_EVERY + SLACK);
      // A pass ran at the day's first row (an hour of host clock after the last), so nothing older
      // than the age bound is left; rows written since the last pass may pass the row bound, by less
      // than a pass interval.
      expect(rows.length, `day ${day}`).toBeLessThan(LIMIT + PASS_EVERY);
      expect(Math.min(...rows.map((r) => r.time)), `day ${day}`).toBeGreaterThanOrEqual(now - DAYS * DAY);
      const s = await status();
      expect(s.pools.find((p) => p.name === 'Windows')?.count, `day ${day}`).toBe(5);
      expect(s.requestCounters.total, `day ${day}`).toBe(sent);
    }
    expect(sent).toBeGreaterThan(4 * LIMIT);
    expect(PLAN.length).toBeGreaterThan(DAYS + 1);
    // Every row of days 0-4 went (the age bound), and the heavy days were cut by the row bound.
    expect(rt.pruner!.pruned).toBeGreaterThanOrEqual(sent - LIMIT - PASS_EVERY);
    // Within the row bound exactly once a pass has run after the last row.
    rt.pruner!.drain();
    const rows = rt.store.history();
    expect(rows.length).toBeLessThanOrEqual(LIMIT);
    // The newest rows are the ones kept, and seqs still count every request.
    expect(rows.at(-1)!.seq).toBe(sent);
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => sent - rows.length + 1 + i));
    // On disk too: a restart on the same file finds the pools and counters whole.
    await rt.close();
    rt = await startHostRuntime(buildRuntimeOptions(config));
    control = `http://127.0.0.1:${rt.control!.address.port}`;
    const s = await status();
    expect(s.pools.find((p) => p.name === 'Windows')?.count).toBe(5);
    expect(s.requestCounters.total).toBe(sent);
    expect(rt.store.historyCount()).toBe(rows.length);
  }, 120_000);
});
