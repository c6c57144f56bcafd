/**
 * Group commit (issue 7): the calls of one event-loop turn share one store transaction, and no answer
 * is written before the transaction that holds its change is committed.
 */
import path from 'node:path';
import { Duplex } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/host/clock.js';
import type { ActivationEvent } from '../../../src/host/events.js';
import { SeededRandom } from '../../../src/host/random.js';
import { KmsService } from '../../../src/host/service.js';
import { type HostRuntime, startHostRuntime } from '../../../src/server/runtime.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { SqliteStore } from '../../../src/store/sqlite.js';
import type { Store, StoreChange } from '../../../src/store/store.js';
import {
  activationStub,
  bindBytes,
  RawKmsClient,
  requestBody,
  requestBytes,
} from '../../helpers/raw-client.js';
import { removeDir, tempDir } from '../store/helpers.js';

const T0 = Date.UTC(2026, 0, 1);
const conn = { peer: '192.0.2.1:1000', connectionId: 1 };

function stubFor(seed: string): Uint8Array {
  const r = new SeededRandom(seed);
  return activationStub(requestBody(r, {}, T0), 'ndr32', r).stub;
}

function service(store: Store = new MemoryStore()): {
  svc: KmsService;
  clock: ManualClock;
  events: ActivationEvent[];
} {
  const clock = new ManualClock(T0);
  const svc = new KmsService({ clock, random: new SeededRandom('group'), store });
  const events: ActivationEvent[] = [];
  svc.onEvent((e) => events.push(e));
  return { svc, clock, events };
}

const dirs: string[] = [];
const runtimes: HostRuntime[] = [];
afterEach(async () => {
  for (const rt of runtimes.splice(0)) await rt.close();
  for (const d of dirs.splice(0)) removeDir(d);
});

describe('KmsService commit groups', () => {
  it('stages changes, then commits them in one go: seqs in order, events announced after the commit', () => {
    const { svc, events } = service();
    const g = svc.openGroup();
    const a = svc.handleCall(stubFor('a'), 'ndr32', conn, undefined, g);
    const b = svc.handleCall(stubFor('b'), 'ndr32', conn, undefined, g);
    expect(g.size).toBe(2);
    expect(a.kind).toBe('response');
    expect(svc.store.historyCount()).toBe(0);
    expect(events).toEqual([]);
    svc.commitGroup(g);
    expect(svc.store.historyCount()).toBe(2);
    expect(events.map((e) => e.seq)).toEqual([1, 2]);
    expect(events.map((e) => e.cmid)).toEqual([a.event!.cmid, b.event!.cmid]);
    expect(g.failure(0)).toBeNull();
    // The counters and decision totals ride on the group's transaction.
    expect(svc.store.load().counters).toMatchObject({
      'requests.total': 2,
      'decisions.count-insufficient': 2,
    });
    expect(svc.store.getMeta('manualClock')).toBe(String(T0));
    svc.commitGroup(g); // idempotent
    expect(svc.store.historyCount()).toBe(2);
    // Then a plain call continues the sequence.
    svc.handleCall(stubFor('c'), 'ndr32', conn);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('answers the same bytes as calls committed one by one', () => {
    const one = service();
    const grouped = service();
    const g = grouped.svc.openGroup();
    for (const s of ['x', 'y', 'z']) {
      const plain = one.svc.handleCall(stubFor(s), 'ndr32', conn);
      const staged = grouped.svc.handleCall(stubFor(s), 'ndr32', conn, undefined, g);
      expect(staged).toEqual({ ...plain, event: { ...plain.event, seq: staged.event!.seq } });
    }
    grouped.svc.commitGroup(g);
    expect(grouped.events).toEqual(one.events);
    expect(grouped.svc.store.history()).toEqual(one.svc.store.history());
  });

  it('a store failure fails every staged call of the group and announces none', () => {
    const store = new MemoryStore();
    const { svc, events } = service(store);
    const g = svc.openGroup();
    svc.handleCall(stubFor('a'), 'ndr32', conn, undefined, g);
    svc.handleCall(stubFor('b'), 'ndr32', conn, undefined, g);
    store.close();
    expect(() => svc.commitGroup(g)).toThrow();
    expect(g.failure(0)).toBeInstanceOf(Error);
    expect(g.failure(1)).toBe(g.failure(0));
    expect(events).toEqual([]);
    expect(() => svc.commitGroup(g)).toThrow();
    expect(() => svc.handleCall(stubFor('c'), 'ndr32', conn, undefined, g)).toThrow(/already committed/);
  });

  it("a listener's error is kept for its call only", () => {
    const { svc } = service();
    const boom = new Error('listener');
    let n = 0;
    svc.onEvent(() => {
      n += 1;
      if (n === 2) throw boom;
    });
    const g = svc.openGroup();
    for (const s of ['a', 'b', 'c']) svc.handleCall(stubFor(s), 'ndr32', conn, undefined, g);
    svc.commitGroup(g);
    expect([g.failure(0), g.failure(1), g.failure(2)]).toEqual([null, boom, null]);
    expect(svc.store.historyCount()).toBe(3);
  });

  it('reset() commits staged calls first (they happened before it)', () => {
    const { svc, events } = service();
    const g = svc.openGroup();
    svc.handleCall(stubFor('a'), 'ndr32', conn, undefined, g);
    svc.reset();
    expect(events).toHaveLength(1);
    expect(svc.store.historyCount()).toBe(0);
    svc.commitGroup(g); // already committed: nothing more
    expect(svc.store.historyCount()).toBe(0);
    expect(g.failure(0)).toBeNull();
  });
});

describe('SqliteStore.commitMany', () => {
  function sqlite(): SqliteStore {
    const dir = tempDir();
    dirs.push(dir);
    return new SqliteStore(path.join(dir, 'kmslab.sqlite'));
  }
  const change = (i: number): StoreChange => ({
    upsert: [
      {
        applicationId: '55c92734-d682-4d71-983e-d6ec3f16059f',
        cmid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        firstSeen: i,
        lastSeen: i,
        workstation: 'ws',
        skuId: 's',
        kmsId: 'k',
      },
    ],
    history: {
      time: i,
      connectionId: 1,
      peer: 'p',
      cmid: 'c',
      previousCmid: 'p',
      applicationId: 'a',
      skuId: 's',
      kmsId: 'k',
      requiredCount: 25,
      count: i,
      wouldActivate: false,
      hresult: 0,
      protocol: 6,
      ndr: 'ndr32',
      workstation: 'w',
      epid: 'e',
      licenseStatus: 0,
      vm: false,
    },
  });

  it('commits in order and returns the seqs; all or nothing', () => {
    const s = sqlite();
    expect(s.commitMany([change(1), change(2), change(3)])).toEqual([1, 2, 3]);
    const bad = change(5);
    bad.meta = { requestTotals: 5 as unknown as string }; // refused by checkMeta
    expect(() => s.commitMany([change(4), bad])).toThrow();
    expect(s.historyCount()).toBe(3);
    expect(s.load().pools).toHaveLength(3);
    expect(s.commitMany([])).toEqual([]);
    s.close();
  });
});

describe('TCP server: group commit', () => {
  it('every answer is written after the transaction holding its CMID committed', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const store = new SqliteStore(path.join(dir, 'kmslab.sqlite'));
    const transactions: number[] = [];
    const commitMany = store.commitMany.bind(store);
    store.commitMany = (changes) => {
      transactions.push(changes.length);
      return commitMany(changes);
    };
    let responses = 0;
    let early = 0;
    const rt = await startHostRuntime({
      listen: [{ host: '127.0.0.1', port: 0 }],
      store,
      clock: 'manual',
      seed: 'group-tcp',
      logger: pino({ level: 'silent' }),
      hooks: {
        onPdu(dir, _id, bytes) {
          if (dir !== 's2c' || bytes[2] !== 2) return;
          responses += 1;
          if (store.historyCount() < responses) early += 1;
        },
      },
    });
    runtimes.push(rt);
    const clients = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        RawKmsClient.connect(rt.addresses[0]!, { seed: `c${i}`, nowMs: T0 }),
      ),
    );
    for (let round = 0; round < 4; round++) {
      const results = await Promise.all(clients.map((c) => c.activate()));
      for (const r of results) expect(r.hresult).toBe(0);
    }
    for (const c of clients) c.close();
    expect(responses).toBe(48);
    expect(early).toBe(0);
    expect(store.historyCount()).toBe(48);
    // Concurrent calls shared transactions.
    expect(transactions.reduce((a, b) => a + b, 0)).toBe(48);
    expect(transactions.length).toBeLessThan(48);
  });

  it('a store failure answers the group with faults and the host keeps serving', async () => {
    const store = new MemoryStore();
    let fail = true;
    const commit = store.commit.bind(store);
    store.commit = (c) => {
      if (fail && c.history) throw new Error('disk full');
      return commit(c);
    };
    const rt = await startHostRuntime({
      listen: [{ host: '127.0.0.1', port: 0 }],
      store,
      clock: 'manual',
      seed: 'group-fail',
      logger: pino({ level: 'silent' }),
    });
    runtimes.push(rt);
    const errors: string[] = [];
    rt.server.observe((o) => {
      if (o.kind === 'call-error') errors.push(o.error.message);
    });
    const c = await RawKmsClient.connect(rt.addresses[0]!, { nowMs: T0 });
    try {
      const a = await c.activate();
      expect(a.faultStatus).toBe(0x1c010001);
    } finally {
      c.close();
    }
    expect(errors).toEqual(['disk full']);
    expect(store.historyCount()).toBe(0);
    fail = false;
    const d = await RawKmsClient.connect(rt.addresses[0]!, { seed: 'd', nowMs: T0 });
    try {
      expect((await d.activate()).hresult).toBe(0);
    } finally {
      d.close();
    }
    expect(store.historyCount()).toBe(1);
  });
});

describe('TCP server: calls read ahead of their answers', () => {
  it('a chunk of requests from a client that never reads: nothing runs past the answer that crosses maxUnsentBytes', async () => {
    const logs: { msg: string }[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (l: string) => logs.push(JSON.parse(l) as { msg: string }) },
    );
    const rt = await startHostRuntime({
      listen: [{ host: '127.0.0.1', port: 0 }],
      store: 'memory',
      clock: 'manual',
      seed: 'read-ahead',
      logger,
      limits: { maxUnsentBytes: 16 * 1024, maxRequestsPerConnection: 1_000_000 },
    });
    runtimes.push(rt);
    const calls: number[] = [];
    rt.server.observe((o) => {
      if (o.kind === 'call') calls.push(logs.length);
    });
    // Writes never complete, as for a client that does not read.
    const stuck = new Duplex({ read() {}, write() {} });
    Object.assign(stuck, { remoteAddress: '192.0.2.1', remotePort: 40000, localPort: 1688, setNoDelay() {} });
    (rt.server as unknown as { accept(s: Duplex): void }).accept(stuck);
    const req = requestBytes(3, 0, stubFor('read-ahead'));
    stuck.emit(
      'data',
      Buffer.concat([bindBytes(2, { ndr64: false, btfn: false }), ...Array.from({ length: 200 }, () => req)]),
    );
    // Answers go out at the end of the turn (after the commit): wait for it.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    const drops = logs.filter((l) => l.msg.startsWith('client does not read'));
    expect(drops).toHaveLength(1);
    const dropAt = logs.indexOf(drops[0]!);
    // About 16 KiB / 300 bytes ≈ 55 answers fit; the calls after the crossing one were not even run.
    expect(calls.filter((at) => at > dropAt)).toEqual([]);
    expect(rt.store.historyCount()).toBe(calls.length);
    expect(rt.store.historyCount()).toBeGreaterThan(50);
    expect(rt.store.historyCount()).toBeLessThan(60);
    stuck.destroy();
  });
});
