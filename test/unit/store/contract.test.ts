/** The behaviour both Store implementations must share. */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { comparePoolEntries } from '../../../src/store/common.js';
import type { HistoryRecord, PoolEntry, Store, StoreChange } from '../../../src/store/store.js';
import { APP_OFFICE, APP_WIN, cmid, entry, type Opened, openKind, record } from './helpers.js';

describe.each(['memory', 'sqlite'] as const)('%s store', (kind) => {
  let opened: Opened;
  let store: Store;

  beforeEach(() => {
    opened = openKind(kind);
    store = opened.store;
  });
  afterEach(() => opened.dispose());

  it('reports its kind and path', () => {
    expect(store.kind).toBe(kind);
    if (kind === 'memory') expect(store.path).toBeNull();
    else expect(store.path).toMatch(/kmslab\.sqlite$/);
  });

  it('starts empty', () => {
    expect(store.load()).toEqual({ pools: [], meta: {}, counters: {} });
    expect(store.history()).toEqual([]);
    expect(store.historyCount()).toBe(0);
  });

  describe('pools', () => {
    it('round-trips upserts through load, sorted by application then cmid', () => {
      const a = entry(3);
      const b = entry(1);
      const c = entry(2, { applicationId: APP_OFFICE });
      store.commit({ upsert: [a, b, c] });
      expect(store.load().pools).toEqual([c, b, a]);
    });

    it('upsert replaces the whole entry with the same (application, cmid)', () => {
      store.commit({ upsert: [entry(1)] });
      const updated = entry(1, { firstSeen: 5, lastSeen: 99, workstation: 'OTHER', skuId: 's', kmsId: 'k' });
      store.commit({ upsert: [updated] });
      expect(store.load().pools).toEqual([updated]);
    });

    it('keeps the same cmid in different applications apart', () => {
      const w = entry(1);
      const o = entry(1, { applicationId: APP_OFFICE });
      store.commit({ upsert: [w, o] });
      expect(store.load().pools).toHaveLength(2);
      store.commit({ remove: [{ applicationId: APP_WIN, cmid: cmid(1) }] });
      expect(store.load().pools).toEqual([o]);
    });

    it('removes entries, and ignores removal of absent ones', () => {
      store.commit({ upsert: [entry(1), entry(2), entry(3)] });
      store.commit({
        remove: [
          { applicationId: APP_WIN, cmid: cmid(2) },
          { applicationId: APP_WIN, cmid: cmid(42) },
          { applicationId: 'nope', cmid: cmid(1) },
        ],
      });
      expect(store.load().pools.map((e) => e.cmid)).toEqual([cmid(1), cmid(3)]);
    });

    it('applies removals before upserts within one commit (expired then seen again stays)', () => {
      store.commit({ upsert: [entry(1)] });
      const again = entry(1, { firstSeen: 10, lastSeen: 10 });
      store.commit({ remove: [{ applicationId: APP_WIN, cmid: cmid(1) }], upsert: [again] });
      expect(store.load().pools).toEqual([again]);
    });

    it('last upsert of a key in one commit wins', () => {
      const first = entry(1, { lastSeen: 1 });
      const second = entry(1, { lastSeen: 2 });
      store.commit({ upsert: [first, second] });
      expect(store.load().pools).toEqual([second]);
    });

    it('does not alias caller objects', () => {
      const e = entry(1);
      store.commit({ upsert: [e] });
      e.lastSeen = -1;
      const loaded = store.load();
      expect(loaded.pools[0]!.lastSeen).toBe(entry(1).lastSeen);
      loaded.pools[0]!.lastSeen = -2;
      expect(store.load().pools[0]!.lastSeen).toBe(entry(1).lastSeen);
    });

    it('keeps large pools', () => {
      const many = Array.from({ length: 500 }, (_, i) => entry(i));
      store.commit({ upsert: many });
      expect(store.load().pools).toHaveLength(500);
    });
  });

  describe('commit', () => {
    it('returns the history seq, counting from 1, and 0 without a record', () => {
      expect(store.commit({ upsert: [entry(1)] })).toBe(0);
      expect(store.commit({ history: record(1) })).toBe(1);
      expect(store.commit({ history: record(2), upsert: [entry(2)] })).toBe(2);
      expect(store.commit({})).toBe(0);
      expect(store.commit({ history: record(3) })).toBe(3);
      expect(store.historyCount()).toBe(3);
    });

    it('ignores a seq given on input', () => {
      expect(store.commit({ history: { ...record(1), seq: 77 } })).toBe(1);
      expect(store.history()[0]!.seq).toBe(1);
    });

    it('sets meta in the same commit', () => {
      const seq = store.commit({ meta: { requests: '1', clock: '1700000000000' }, history: record(1) });
      expect(seq).toBe(1);
      expect(store.getMeta('requests')).toBe('1');
      expect(store.load().meta).toEqual({ requests: '1', clock: '1700000000000' });
    });

    it('rejects non-string meta, leaving the whole commit unapplied', () => {
      store.commit({ upsert: [entry(1)] });
      const bad = { n: 5 } as unknown as Record<string, string>;
      expect(() =>
        store.commit({
          remove: [{ applicationId: APP_WIN, cmid: cmid(1) }],
          upsert: [entry(2)],
          meta: bad,
          history: record(1),
        }),
      ).toThrow(TypeError);
      expect(() => store.setMeta('n', 5 as unknown as string)).toThrow(TypeError);
      expect(store.load()).toEqual({ pools: [entry(1)], meta: {}, counters: {} });
      expect(store.historyCount()).toBe(0);
    });

    it('sets counters in the same commit; a later commit replaces only the values it names', () => {
      store.commit({ counters: { 'requests.total': 2, 'requests.failed': 1 }, history: record(1) });
      store.commit({ counters: { 'requests.total': 3, 'requests.licensed': 1 }, history: record(2) });
      store.commit({ counters: { 'requests.total': 3 } });
      expect(store.load().counters).toEqual({
        'requests.total': 3,
        'requests.failed': 1,
        'requests.licensed': 1,
      });
    });

    it('rejects a counter that is not a non-negative safe integer, leaving the whole commit unapplied', () => {
      store.commit({ counters: { 'requests.total': 1 } });
      for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, '3' as unknown as number]) {
        expect(() =>
          store.commit({
            upsert: [entry(2)],
            counters: { 'requests.total': 2, 'requests.failed': bad },
            history: record(1),
          }),
        ).toThrow(/counter requests.failed/);
      }
      expect(store.load()).toEqual({ pools: [], meta: {}, counters: { 'requests.total': 1 } });
      expect(store.historyCount()).toBe(0);
    });

    it('round-trips every history field, with and without a fault', () => {
      const plain = record(30, {
        hresult: 0xc004f042,
        ndr: 'ndr64',
        vm: true,
        protocol: 4,
        count: 0,
        wouldActivate: false,
        licenseStatus: 5,
        previousCmid: cmid(29),
        peer: '[2001:db8::1]:1688',
      });
      const faulted = record(31, { fault: 'drop-response' });
      store.commit({ history: plain });
      store.commit({ history: faulted });
      const got = store.history();
      expect(got).toStrictEqual([
        { ...plain, seq: 1 },
        { ...faulted, seq: 2 },
      ]);
      expect('fault' in got[0]!).toBe(false);
    });
  });

  describe('history queries', () => {
    // times: 1000*n + base, cmid(n), wouldActivate n >= 25; odd n in Office.
    const N = 40;
    const base = 1_700_000_000_000;
    beforeEach(() => {
      for (let n = 1; n <= N; n++) {
        store.commit({ history: record(n, { applicationId: n % 2 ? APP_OFFICE : APP_WIN }) });
      }
      // A second request from CMID 5.
      store.commit({ history: record(5, { time: base + 100_000, applicationId: APP_OFFICE }) });
    });

    const seqs = (rs: HistoryRecord[]) => rs.map((r) => r.seq);

    it('returns everything in seq order', () => {
      const all = store.history();
      expect(seqs(all)).toEqual(Array.from({ length: N + 1 }, (_, i) => i + 1));
      expect(store.historyCount()).toBe(N + 1);
    });

    it('filters on an inclusive time range', () => {
      expect(seqs(store.history({ from: base + 10_000, to: base + 12_000 }))).toEqual([10, 11, 12]);
      expect(seqs(store.history({ from: base + 40_000 }))).toEqual([40, 41]);
      expect(seqs(store.history({ to: base + 2000 }))).toEqual([1, 2]);
      expect(store.history({ from: base + 12_000, to: base + 10_000 })).toEqual([]);
      expect(seqs(store.history({ from: base + 5000, to: base + 5000 }))).toEqual([5]);
    });

    it('filters on cmid', () => {
      expect(seqs(store.history({ cmid: cmid(5) }))).toEqual([5, 41]);
      expect(store.history({ cmid: cmid(999) })).toEqual([]);
    });

    it('filters on application', () => {
      const office = store.history({ applicationId: APP_OFFICE });
      expect(office.every((r) => r.applicationId === APP_OFFICE)).toBe(true);
      expect(office).toHaveLength(N / 2 + 1);
      expect(store.history({ applicationId: APP_WIN })).toHaveLength(N / 2);
    });

    it('filters on wouldActivate', () => {
      expect(seqs(store.history({ wouldActivate: true }))).toEqual(
        Array.from({ length: 16 }, (_, i) => i + 25),
      );
      expect(store.history({ wouldActivate: false })).toHaveLength(N + 1 - 16);
    });

    it('pages with sinceSeq and limit', () => {
      expect(seqs(store.history({ sinceSeq: 38 }))).toEqual([39, 40, 41]);
      expect(seqs(store.history({ limit: 3 }))).toEqual([1, 2, 3]);
      expect(seqs(store.history({ sinceSeq: 3, limit: 2 }))).toEqual([4, 5]);
      expect(store.history({ limit: 0 })).toEqual([]);
      expect(store.history({ sinceSeq: 41 })).toEqual([]);
      expect(seqs(store.history({ sinceSeq: -5, limit: 1 }))).toEqual([1]);
      const pages: number[] = [];
      let since = 0;
      for (;;) {
        const page = store.history({ sinceSeq: since, limit: 7 });
        if (page.length === 0) break;
        pages.push(...seqs(page).map(Number));
        since = page[page.length - 1]!.seq!;
      }
      expect(pages).toEqual(Array.from({ length: N + 1 }, (_, i) => i + 1));
    });

    it('combines filters', () => {
      expect(
        seqs(
          store.history({
            applicationId: APP_OFFICE,
            wouldActivate: true,
            from: base + 20_000,
            to: base + 100_000,
            limit: 3,
          }),
        ),
      ).toEqual([25, 27, 29]);
      expect(seqs(store.history({ cmid: cmid(5), sinceSeq: 5 }))).toEqual([41]);
    });

    it('rejects a bad limit', () => {
      expect(() => store.history({ limit: -1 })).toThrow(RangeError);
      expect(() => store.history({ limit: 1.5 })).toThrow(RangeError);
    });
  });

  describe('meta', () => {
    it('sets, overwrites and gets', () => {
      expect(store.getMeta('epid.win')).toBeUndefined();
      store.setMeta('epid.win', 'A');
      store.setMeta('epid.win', 'B');
      store.setMeta('hwid', '3A1C049600B60076');
      expect(store.getMeta('epid.win')).toBe('B');
      expect(store.load().meta).toEqual({ 'epid.win': 'B', hwid: '3A1C049600B60076' });
    });

    it('keeps odd keys and empty values', () => {
      store.setMeta('__proto__', 'x');
      store.setMeta('', '');
      expect(store.getMeta('__proto__')).toBe('x');
      expect(store.getMeta('')).toBe('');
      expect(Object.keys(store.load().meta).sort()).toEqual(['', '__proto__']);
    });
  });

  describe('reset', () => {
    beforeEach(() => {
      store.setMeta('epid', 'E');
      store.commit({ upsert: [entry(1), entry(2)], history: record(1), counters: { 'requests.total': 1 } });
      store.commit({ history: record(2) });
    });

    it('empties pools and history, keeps meta and counters, restarts seq', () => {
      store.reset();
      expect(store.load()).toEqual({ pools: [], meta: { epid: 'E' }, counters: { 'requests.total': 1 } });
      expect(store.historyCount()).toBe(0);
      expect(store.history()).toEqual([]);
      expect(store.commit({ history: record(3) })).toBe(1);
    });

    it('with all, also empties meta and counters', () => {
      store.reset({ all: true });
      expect(store.load()).toEqual({ pools: [], meta: {}, counters: {} });
      expect(store.getMeta('epid')).toBeUndefined();
    });
  });

  it('throws after close, and close is idempotent', () => {
    store.close();
    store.close();
    expect(() => store.load()).toThrow(/closed/);
    expect(() => store.commit({})).toThrow(/closed/);
    expect(() => store.getMeta('x')).toThrow(/closed/);
  });

  it('an arbitrary sequence of commits leaves load() equal to a simple model', () => {
    const app = fc.constantFrom(APP_WIN, APP_OFFICE, 'x');
    const cm = fc.integer({ min: 0, max: 5 }).map(cmid);
    const time = fc.integer({ min: 0, max: 2 ** 45 });
    const poolEntry = fc.record<PoolEntry>({
      applicationId: app,
      cmid: cm,
      firstSeen: time,
      lastSeen: time,
      workstation: fc.string({ maxLength: 8 }),
      skuId: fc.constantFrom('s1', 's2'),
      kmsId: fc.constantFrom('k1', 'k2'),
    });
    const change = fc.record(
      {
        upsert: fc.array(poolEntry, { maxLength: 4 }),
        remove: fc.array(fc.record({ applicationId: app, cmid: cm }), { maxLength: 3 }),
        meta: fc.dictionary(fc.constantFrom('clock', 'requests', 'epid'), fc.string({ maxLength: 4 })),
        history: fc.integer({ min: 1, max: 60 }).map((n) => record(n)),
      },
      { requiredKeys: [] },
    );
    const key = (a: string, c: string) => JSON.stringify([a, c]);

    fc.assert(
      fc.property(fc.array(change, { maxLength: 25 }), fc.boolean(), (changes: StoreChange[], resetMid) => {
        store.reset({ all: true });
        const pools = new Map<string, PoolEntry>();
        const meta: Record<string, string> = {};
        let seq = 0;
        changes.forEach((c, i) => {
          if (resetMid && i === Math.floor(changes.length / 2)) {
            store.reset();
            pools.clear();
            seq = 0;
          }
          for (const r of c.remove ?? []) pools.delete(key(r.applicationId, r.cmid));
          for (const e of c.upsert ?? []) pools.set(key(e.applicationId, e.cmid), { ...e });
          Object.assign(meta, c.meta);
          const got = store.commit(c);
          expect(got).toBe(c.history ? ++seq : 0);
        });
        const snap = store.load();
        expect(snap.pools).toEqual([...pools.values()].sort(comparePoolEntries));
        expect(snap.meta).toEqual(meta);
        expect(store.historyCount()).toBe(seq);
      }),
      { numRuns: 150 },
    );
  });
});
