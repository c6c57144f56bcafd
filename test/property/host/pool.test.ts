/**
 * Count-pool invariants (spec f.1–f.3) over arbitrary sequences of requests (CMIDs from a small set, the
 * three applications and an unknown one) and clock advances (0..40 days, ms granularity, biased to the
 * exact 30-day boundary), driven through the sans-io host core `handle()`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../../src/catalog/products.js';
import { createHostState, type HostState, handle, poolFor } from '../../../src/host/host.js';
import { createIdentity } from '../../../src/host/identity.js';
import { resolvePolicy } from '../../../src/host/policy.js';
import { SeededRandom } from '../../../src/host/random.js';
import { HResult } from '../../../src/kms/hresult.js';
import {
  APPS,
  body,
  type Cmd,
  capacitiesArb,
  catalogWithCapacities,
  cmdArb,
  cmidOf,
  distinctWithinWindow,
  poolKey,
  RETENTION,
  RefPool,
} from './model.js';

const T0 = Date.UTC(2026, 0, 1);

const catalogs = new Map<string, Catalog>();
function catalogFor(caps: readonly [number, number, number]): Catalog {
  const k = caps.join('/');
  let c = catalogs.get(k);
  if (!c) {
    c = catalogWithCapacities(...caps);
    catalogs.set(k, c);
  }
  return c;
}

function newState(caps: readonly [number, number, number]): HostState {
  const catalog = catalogFor(caps);
  return createHostState(catalog, resolvePolicy({}), createIdentity(catalog, new SeededRandom(1), T0));
}

/** Sends one request through handle(); returns the count the client sees. */
function request(state: HostState, cmid: number, app: number, now: number, required = 25): number {
  const r = handle(state, body(cmid, app, now, required), {
    now,
    peer: '127.0.0.1:1',
    connectionId: 1,
    protocol: 4,
    ndr: 'ndr32',
  });
  expect(r.hresult).toBe(HResult.S_OK);
  return r.event.count;
}

function liveCmids(state: HostState, pool: string, now: number): string[] {
  return state.pools
    .get(pool)!
    .list(now)
    .map((c) => c.cmid)
    .sort();
}

function snapshot(state: HostState, now: number): Record<string, unknown> {
  return Object.fromEntries([...state.pools].map(([id, p]) => [id, p.list(now)]));
}

/** Runs `cmds` from T0; returns the final time. */
function run(state: HostState, cmds: Cmd[]): number {
  let now = T0;
  for (const c of cmds) {
    if (c.kind === 'adv') now += c.ms;
    else request(state, c.cmid, c.app, now);
  }
  return now;
}

const POOLS = [APPS[0], APPS[1], APPS[2]];

describe('count pool properties (spec f.1–f.3)', () => {
  it('the count equals the reference model and "distinct CMIDs within 30 days, capped"', () => {
    fc.assert(
      fc.property(capacitiesArb, fc.array(cmdArb(), { maxLength: 80 }), (caps, cmds) => {
        const state = newState(caps);
        const ref = new Map(POOLS.map((p, i) => [p, new RefPool(caps[i]!)]));
        const seen: { cmid: string; pool: string; t: number }[] = [];
        let now = T0;
        for (const c of cmds) {
          if (c.kind === 'adv') {
            now += c.ms;
          } else {
            const key = poolKey(c.app);
            const count = request(state, c.cmid, c.app, now);
            seen.push({ cmid: cmidOf(c.cmid), pool: key, t: now });
            expect(count).toBe(ref.get(key)!.touch(cmidOf(c.cmid), now));
            expect(count).toBe(distinctWithinWindow(seen, key, now, caps[POOLS.indexOf(key)]!));
            expect(count).toBeGreaterThanOrEqual(1);
          }
          for (const [i, p] of POOLS.entries()) {
            const pool = state.pools.get(p)!;
            expect(pool.countAt(now)).toBe(ref.get(p)!.live(now).length);
            expect(pool.countAt(now)).toBe(distinctWithinWindow(seen, p, now, caps[i]!));
            expect(liveCmids(state, p, now)).toEqual(ref.get(p)!.live(now));
            expect(pool.countAt(now)).toBeLessThanOrEqual(pool.capacity);
            for (const e of pool.list(now)) expect(e.lastSeen).toBeGreaterThanOrEqual(now - RETENTION);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('is monotone under new CMIDs while time stands still: +1 per new CMID up to the capacity', () => {
    fc.assert(
      fc.property(
        capacitiesArb,
        fc.array(cmdArb(), { maxLength: 40 }),
        fc.nat({ max: 3 }),
        fc.integer({ min: 1, max: 60 }),
        (caps, prefix, app, fresh) => {
          const state = newState(caps);
          const now = run(state, prefix);
          const pool = poolFor(state, APPS[app]!);
          const others = POOLS.filter((p) => p !== pool.applicationId).map((p) => [
            p,
            state.pools.get(p)!.list(now),
          ]);
          let prev = pool.countAt(now);
          for (let i = 0; i < fresh; i++) {
            const count = request(state, 1000 + i, app, now); // never seen before
            expect(count).toBe(Math.min(prev + 1, pool.capacity));
            prev = count;
          }
          // Other pools are untouched (spec f.3: distinct pools are independent).
          for (const [p, before] of others) expect(state.pools.get(p as string)!.list(now)).toEqual(before);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('is repeat-idempotent: the same CMID again changes nothing', () => {
    fc.assert(
      fc.property(
        capacitiesArb,
        fc.array(cmdArb(), { maxLength: 40 }),
        fc.nat({ max: 13 }),
        fc.nat({ max: 3 }),
        fc.integer({ min: 1, max: 5 }),
        (caps, prefix, cmid, app, times) => {
          const state = newState(caps);
          const now = run(state, prefix);
          const first = request(state, cmid, app, now);
          const after = snapshot(state, now);
          for (let i = 0; i < times; i++) {
            expect(request(state, cmid, app, now)).toBe(first);
            expect(snapshot(state, now)).toEqual(after);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps pools independent: a request changes only its own pool', () => {
    fc.assert(
      fc.property(capacitiesArb, fc.array(cmdArb(), { maxLength: 60 }), (caps, cmds) => {
        const state = newState(caps);
        let now = T0;
        for (const c of cmds) {
          if (c.kind === 'adv') {
            now += c.ms;
            continue;
          }
          const target = poolKey(c.app);
          const before = POOLS.filter((p) => p !== target).map((p) => state.pools.get(p)!.list(now));
          request(state, c.cmid, c.app, now);
          const after = POOLS.filter((p) => p !== target).map((p) => state.pools.get(p)!.list(now));
          expect(after).toEqual(before);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('decays exactly at 30 days: present at lastSeen + 30 d, gone 1 ms later (lastSeen < now − 30 d)', () => {
    fc.assert(
      fc.property(
        capacitiesArb,
        fc.array(cmdArb(), { maxLength: 40 }),
        fc.nat({ max: 13 }),
        fc.nat({ max: 3 }),
        (caps, prefix, cmid, app) => {
          const state = newState(caps);
          const t = run(state, prefix);
          request(state, cmid, app, t);
          const pool = poolFor(state, APPS[app]!);
          const id = cmidOf(cmid);
          const at = (now: number) => pool.list(now).some((c) => c.cmid === id);
          expect(at(t + RETENTION - 1)).toBe(true);
          expect(at(t + RETENTION)).toBe(true);
          expect(at(t + RETENTION + 1)).toBe(false);
          // Every entry was last seen at or before t, so the whole pool is empty 30 days + 1 ms later.
          expect(pool.countAt(t + RETENTION + 1)).toBe(0);
          // A request exactly at the boundary still finds it (refresh, not re-add) ...
          const s2 = newState(caps);
          run(s2, prefix);
          request(s2, cmid, app, t);
          const c2 = poolFor(s2, APPS[app]!);
          const n = c2.countAt(t + RETENTION);
          expect(c2.touch(id, t + RETENTION, { workstation: '', skuId: '', kmsId: '' }).added).toBe(false);
          expect(c2.countAt(t + RETENTION)).toBe(n);
          // ... and 1 ms later it is new again.
          const s3 = newState(caps);
          run(s3, prefix);
          request(s3, cmid, app, t);
          const r3 = poolFor(s3, APPS[app]!).touch(id, t + RETENTION + 1, {
            workstation: '',
            skuId: '',
            kmsId: '',
          });
          expect(r3.added).toBe(true);
          expect(r3.expired.map((c) => c.cmid)).toContain(id);
        },
      ),
      { numRuns: 200 },
    );
  });
});
