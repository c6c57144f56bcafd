/**
 * The cache capacity follows the highest N_policy held (spec f.2; docs/host.md section 3): Microsoft,
 * "Guidelines for troubleshooting the Key Management Service": "The count is set to cache only twice
 * the maximum license policy returned by a KMS client ... In environments that contain only Windows
 * Server KMS clients, the maximum count on the KMS host is 10."
 */
import { describe, expect, it } from 'vitest';
import { DAY, ManualClock } from '../../../src/host/clock.js';
import { CountPool } from '../../../src/host/pool.js';
import { SeededRandom } from '../../../src/host/random.js';
import { KmsService } from '../../../src/host/service.js';
import { encodeRequest, verifyResponse } from '../../../src/kms/envelope.js';
import type { KmsRequestBody } from '../../../src/kms/messages.js';
import { unwrapResponseStub, wrapRequestStub } from '../../../src/kms/stub.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { requestBody } from '../../helpers/raw-client.js';

const T0 = Date.UTC(2026, 0, 1);
const WINDOWS = '55c92734-d682-4d71-983e-d6ec3f16059f';
const OFFICE2013 = '0ff1ce15-a989-479d-af46-f275c6370663';

function service(store: Store = openStore('memory'), clock = new ManualClock(T0)) {
  return new KmsService({ clock, random: new SeededRandom('cap'), store });
}

function countFor(svc: KmsService, body: KmsRequestBody): number {
  const rnd = new SeededRandom(body.cmid);
  const { message, context } = encodeRequest(body, { random: (n) => rnd.bytes(n) });
  const out = svc.handleCall(wrapRequestStub(message, 'ndr32'), 'ndr32', {
    peer: '127.0.0.1:1',
    connectionId: 1,
  });
  if (out.kind !== 'response') throw new Error('fault');
  const m = unwrapResponseStub(out.stub, 'ndr32').message!;
  return verifyResponse(m, context).body.currentCount;
}

const pool = (svc: KmsService, id: string) => svc.status().pools.find((p) => p.applicationId === id)!;

describe('cache capacity = 2 × the highest N_policy held (spec f.2)', () => {
  it('twelve Windows Server machines alone get counts up to 10; a Windows client lifts the cap to 50', () => {
    const svc = service();
    const r = new SeededRandom('twelve');
    const counts: number[] = [];
    for (let i = 0; i < 12; i++) counts.push(countFor(svc, requestBody(r, { product: 'server2019' }, T0)));
    expect(counts).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10]);
    expect(pool(svc, WINDOWS)).toMatchObject({ count: 10, capacity: 10 });
    // One Windows client (N = 25): the capacity is 50 at once, so it is the 11th machine.
    expect(countFor(svc, requestBody(r, { product: 'win10Pro' }, T0))).toBe(11);
    expect(pool(svc, WINDOWS)).toMatchObject({ count: 11, capacity: 50 });
    // More servers now count up to 50.
    const more: number[] = [];
    for (let i = 0; i < 45; i++) more.push(countFor(svc, requestBody(r, { product: 'server2019' }, T0)));
    expect(more.slice(0, 3)).toEqual([12, 13, 14]);
    expect(more.at(-1)).toBe(50);
  });

  it('shrinks back to 10 when the last client ages out, evicting the least recently seen servers', () => {
    const clock = new ManualClock(T0);
    const svc = service(openStore('memory'), clock);
    const r = new SeededRandom('shrink');
    countFor(svc, requestBody(r, { product: 'win10Pro' }, T0)); // the only client, seen at T0
    const servers: KmsRequestBody[] = [];
    for (let i = 0; i < 20; i++) {
      clock.set(T0 + (i + 1) * 60_000); // one minute apart: server i is less recently seen than i + 1
      const b = requestBody(r, { product: 'server2019' }, clock.now());
      servers.push(b);
      countFor(svc, b);
    }
    expect(pool(svc, WINDOWS)).toMatchObject({ count: 21, capacity: 50 });
    // Every server renews 7 days later; the client does not.
    clock.set(T0 + 7 * DAY);
    for (const b of servers) countFor(svc, { ...b, clientTime: b.clientTime });
    expect(pool(svc, WINDOWS)).toMatchObject({ count: 21, capacity: 50 });
    // At T0 + 30 d the client is still held; 1 ms later it is gone and the capacity is 10. Status
    // already shows the pool as the next request will leave it: the 10 most recently seen servers.
    clock.set(T0 + 30 * DAY);
    expect(pool(svc, WINDOWS)).toMatchObject({ count: 21, capacity: 50 });
    clock.set(T0 + 30 * DAY + 1);
    expect(pool(svc, WINDOWS)).toMatchObject({ count: 10, capacity: 10 });
    const kept = svc.clients().map((c) => c.cmid);
    expect(kept).toEqual(servers.slice(10).map((b) => b.cmid));
    // The next request (a server already held) evicts the other ten and sees 10.
    expect(countFor(svc, servers[19]!)).toBe(10);
    expect(
      svc
        .clients()
        .map((c) => c.cmid)
        .sort(),
    ).toEqual(
      servers
        .slice(10)
        .map((b) => b.cmid)
        .sort(),
    );
    // A server not held any more is new again: it evicts the least recently seen one, count stays 10.
    expect(countFor(svc, servers[0]!)).toBe(10);
  });

  it('keeps Office pools at 10 (N_policy 5), whatever the Windows pool does', () => {
    const svc = service();
    const r = new SeededRandom('office');
    for (let i = 0; i < 3; i++) countFor(svc, requestBody(r, { product: 'win10Pro' }, T0));
    const counts: number[] = [];
    for (let i = 0; i < 12; i++) counts.push(countFor(svc, requestBody(r, { product: 'office2016' }, T0)));
    expect(counts.slice(-3)).toEqual([10, 10, 10]);
    expect(pool(svc, OFFICE2013)).toMatchObject({ count: 10, capacity: 10, maxCapacity: 10 });
    expect(pool(svc, WINDOWS)).toMatchObject({ count: 3, capacity: 50 });
  });

  it('never goes above 50 nor below 10 for odd N_policy values (bounded by products.json)', () => {
    const svc = service();
    const r = new SeededRandom('odd');
    countFor(svc, requestBody(r, { product: 'win10Pro', requiredClientCount: 1000 }, T0));
    expect(pool(svc, WINDOWS).capacity).toBe(50);
    const s2 = service();
    countFor(s2, requestBody(r, { product: 'server2019', requiredClientCount: 1 }, T0));
    expect(pool(s2, WINDOWS).capacity).toBe(10);
  });

  it('restores the capacity from the store after a restart (N_policy is stored per CMID)', () => {
    const clock = new ManualClock(T0);
    const store = openStore('memory');
    const a = service(store, clock);
    const r = new SeededRandom('restart');
    for (let i = 0; i < 3; i++) countFor(a, requestBody(r, { product: 'server2019' }, T0));
    expect(pool(a, WINDOWS).capacity).toBe(10);
    countFor(a, requestBody(r, { product: 'win10Pro' }, T0));
    const b = service(store, clock);
    expect(pool(b, WINDOWS)).toMatchObject({ count: 4, capacity: 50 });
    expect(
      store
        .load()
        .pools.map((e) => e.requiredCount)
        .sort(),
    ).toEqual([25, 5, 5, 5]);
  });

  it('shrinks in steps: an evicted entry N_policy no longer counts for the capacity of the rest', () => {
    const p = new CountPool(WINDOWS, 50, 10);
    const info = (n: number) => ({ workstation: '', skuId: '', kmsId: '', requiredCount: n });
    const id = (i: number) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
    p.touch(id(0), T0, info(25)); // the client, least recently seen
    p.touch(id(1), T0 + 1, info(8)); // N 8: alone it would allow 16
    for (let i = 2; i < 27; i++) p.touch(id(i), T0 + i, info(5));
    expect(p.countAt(T0 + 27)).toBe(27);
    // The client expires: 26 left > 16 (N 8) → the N-8 entry goes first, then 25 > 10 → keep 10.
    const at = T0 + 30 * DAY + 1;
    expect(p.capacityAt(at)).toBe(10);
    expect(p.list(at).map((c) => c.cmid)).toEqual([17, 18, 19, 20, 21, 22, 23, 24, 25, 26].map(id));
    const t = p.touch(id(26), at, info(5));
    expect(t).toMatchObject({ count: 10, capacity: 10 });
    expect(t.evicted.map((c) => c.cmid)).toEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16].map(id),
    );
    expect(t.expired.map((c) => c.cmid)).toEqual([id(0)]);
  });
});
