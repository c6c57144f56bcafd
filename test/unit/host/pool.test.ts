import { describe, expect, it } from 'vitest';
import { DAY } from '../../../src/host/clock.js';
import { CMID_RETENTION_MS, CountPool, compareClients, type PoolClient } from '../../../src/host/pool.js';

const APP = '55c92734-d682-4d71-983e-d6ec3f16059f';
const T0 = Date.UTC(2026, 0, 1);
const info = { workstation: 'ws', skuId: 'sku', kmsId: 'kms' };
const id = (i: number) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;

describe('CountPool (spec f.2, f.3)', () => {
  it('keeps CMIDs 30 days: present at lastSeen + 30 d, gone at + 30 d + 1 ms', () => {
    expect(CMID_RETENTION_MS).toBe(30 * DAY);
    const p = new CountPool(APP, 50);
    p.touch(id(1), T0, info);
    expect(p.countAt(T0 + 30 * DAY)).toBe(1);
    expect(p.list(T0 + 30 * DAY).map((c) => c.cmid)).toEqual([id(1)]);
    expect(p.countAt(T0 + 30 * DAY + 1)).toBe(0);
    expect(p.list(T0 + 30 * DAY + 1)).toEqual([]);
    // A request at the boundary refreshes it ...
    const at = p.touch(id(1), T0 + 30 * DAY, info);
    expect(at).toMatchObject({ count: 1, added: false, expired: [], evicted: [] });
    expect(at.client).toMatchObject({ firstSeen: T0, lastSeen: T0 + 30 * DAY });
    // ... and the 30 days start again.
    expect(p.countAt(T0 + 60 * DAY)).toBe(1);
    expect(p.countAt(T0 + 60 * DAY + 1)).toBe(0);
  });

  it('purges an expired CMID on the next request and counts it anew', () => {
    const p = new CountPool(APP, 50);
    p.touch(id(1), T0, info);
    p.touch(id(2), T0 + DAY, info);
    const r = p.touch(id(1), T0 + 30 * DAY + 1, info);
    expect(r.added).toBe(true);
    expect(r.expired.map((c) => c.cmid)).toEqual([id(1)]);
    expect(r.count).toBe(2);
    expect(r.client.firstSeen).toBe(T0 + 30 * DAY + 1);
    expect(p.size).toBe(2);
  });

  it('counts the requester, each CMID once', () => {
    const p = new CountPool(APP, 50);
    expect(p.touch(id(1), T0, info).count).toBe(1);
    expect(p.touch(id(1), T0, info).count).toBe(1);
    expect(p.touch(id(2), T0, info).count).toBe(2);
    expect(p.touch(id(1), T0 + 1000, info).count).toBe(2);
  });

  it('evicts the least recently seen CMID at capacity ("the 50 most recent")', () => {
    const p = new CountPool(APP, 3);
    p.touch(id(1), T0, info);
    p.touch(id(2), T0 + 1, info);
    p.touch(id(3), T0 + 2, info);
    p.touch(id(1), T0 + 3, info); // 1 is now the most recent
    const r = p.touch(id(4), T0 + 4, info);
    expect(r.count).toBe(3);
    expect(r.evicted.map((c) => c.cmid)).toEqual([id(2)]);
    expect(p.list(T0 + 4).map((c) => c.cmid)).toEqual([id(3), id(1), id(4)]);
  });

  it('breaks lastSeen ties by firstSeen, then CMID, whatever the insertion order (restart-safe)', () => {
    const a = new CountPool(APP, 2);
    a.touch(id(9), T0, info);
    a.touch(id(5), T0, info);
    expect(a.list(T0).map((c) => c.cmid)).toEqual([id(5), id(9)]);
    expect(a.touch(id(7), T0, info).evicted.map((c) => c.cmid)).toEqual([id(5)]);

    const b = new CountPool(APP, 2);
    b.touch(id(9), T0 - 5, info); // known longer ...
    b.touch(id(5), T0, info);
    b.touch(id(9), T0, info); // ... both last seen at T0
    expect(b.touch(id(7), T0, info).evicted.map((c) => c.cmid)).toEqual([id(9)]);

    const x: PoolClient = {
      cmid: id(1),
      firstSeen: 1,
      lastSeen: 2,
      ...info,
      skuId: 's',
      kmsId: 'k',
      requiredCount: 0,
    };
    expect(compareClients(x, { ...x, lastSeen: 3 })).toBeLessThan(0);
    expect(compareClients(x, { ...x, firstSeen: 0 })).toBeGreaterThan(0);
    expect(compareClients(x, { ...x, cmid: id(2) })).toBeLessThan(0);
    expect(compareClients(x, { ...x })).toBe(0);
  });

  it('restores entries from the store in any order with the same behaviour', () => {
    const live = new CountPool(APP, 3);
    for (const [i, t] of [
      [3, T0],
      [1, T0],
      [2, T0 + 1],
    ] as const)
      live.touch(id(i), t, info);
    const restored = new CountPool(APP, 3);
    for (const c of [...live.list(T0 + 1)].reverse()) restored.restore(c);
    expect(restored.list(T0 + 1)).toEqual(live.list(T0 + 1));
    expect(restored.touch(id(4), T0 + 2, info)).toEqual(live.touch(id(4), T0 + 2, info));
    expect(restored.list(T0 + 2)).toEqual(live.list(T0 + 2));
  });

  it('restore does not purge; countAt/list hide expired entries until the next request', () => {
    const p = new CountPool(APP, 10);
    p.restore({ cmid: id(1), firstSeen: T0 - 40 * DAY, lastSeen: T0 - 31 * DAY, ...info });
    expect(p.size).toBe(1);
    expect(p.countAt(T0)).toBe(0);
    expect(p.touch(id(2), T0, info)).toMatchObject({ count: 1, expired: [{ cmid: id(1) }] });
  });

  it('removes a CMID (PreviousClientMachineId) and clears', () => {
    const p = new CountPool(APP, 10);
    p.touch(id(1), T0, info);
    p.touch(id(2), T0, info);
    expect(p.remove(id(1))?.cmid).toBe(id(1));
    expect(p.remove(id(1))).toBeUndefined();
    expect(p.countAt(T0)).toBe(1);
    p.clear();
    expect(p.size).toBe(0);
  });

  it('records the latest workstation / SKU / KMS id but keeps firstSeen', () => {
    const p = new CountPool(APP, 10);
    p.touch(id(1), T0, info);
    const r = p.touch(id(1), T0 + DAY, {
      workstation: 'renamed',
      skuId: 'sku2',
      kmsId: 'kms2',
      requiredCount: 5,
    });
    expect(r.client).toEqual({
      cmid: id(1),
      firstSeen: T0,
      lastSeen: T0 + DAY,
      workstation: 'renamed',
      skuId: 'sku2',
      kmsId: 'kms2',
      requiredCount: 5,
    });
  });

  it('refuses a capacity that is not a positive integer', () => {
    for (const c of [0, -1, 1.5, Number.NaN]) expect(() => new CountPool(APP, c)).toThrow(RangeError);
  });
});
