/**
 * The capacity rule of spec f.2 (docs/host.md section 3) over arbitrary request / clock sequences,
 * against a small oracle written from the rule's wording, independently of src/host/pool.ts:
 * capacity = 2 × the highest N_policy among the CMIDs held (the requester included), within
 * [10, cacheSize]; when over it, evict the least recently seen (never the requester) one at a time.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultCatalog } from '../../../src/catalog/products.js';
import { createHostState, handle } from '../../../src/host/host.js';
import { createIdentity } from '../../../src/host/identity.js';
import { resolvePolicy } from '../../../src/host/policy.js';
import { SeededRandom } from '../../../src/host/random.js';
import { APPS, advanceArb, body, cmidOf, poolKey, RETENTION } from './model.js';

const T0 = Date.UTC(2026, 0, 1);
const catalog = defaultCatalog();
const MAX = new Map(catalog.applications.map((a) => [a.id, a.cacheSize]));

interface Entry {
  first: number;
  last: number;
  n: number;
}

/** The oracle: one pool as a plain map. */
class CapacityOracle {
  readonly held = new Map<string, Entry>();
  constructor(readonly max: number) {}

  cap(entries: Iterable<Entry>): number {
    let n = 0;
    for (const e of entries) n = Math.max(n, e.n);
    return Math.min(this.max, Math.max(Math.min(this.max, 10), 2 * n));
  }

  /** Least recently seen first: lastSeen, then firstSeen, then CMID. */
  static order([a, x]: [string, Entry], [b, y]: [string, Entry]): number {
    return x.last - y.last || x.first - y.first || (a < b ? -1 : a > b ? 1 : 0);
  }

  request(cmid: string, now: number, n: number): number {
    for (const [k, e] of this.held) if (e.last < now - RETENTION) this.held.delete(k);
    const was = this.held.get(cmid);
    this.held.set(cmid, { first: was?.first ?? now, last: now, n });
    while (this.held.size > this.cap(this.held.values())) {
      const victim = [...this.held].filter(([k]) => k !== cmid).sort(CapacityOracle.order)[0]!;
      this.held.delete(victim[0]);
    }
    return this.held.size;
  }

  /** What the pool holds at `now` with nobody asking: live entries, shrunk the same way. */
  view(now: number): { cmids: string[]; capacity: number } {
    const live = [...this.held].filter(([, e]) => e.last >= now - RETENTION).sort(CapacityOracle.order);
    while (live.length > this.cap(live.map(([, e]) => e))) live.shift();
    return { cmids: live.map(([k]) => k).sort(), capacity: this.cap(live.map(([, e]) => e)) };
  }
}

type Cmd = { kind: 'req'; cmid: number; app: number; n: number } | { kind: 'adv'; ms: number };

const nArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(5, 25) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }) },
);
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('req' as const),
      cmid: fc.nat({ max: 69 }),
      app: fc.nat({ max: 3 }),
      n: nArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('adv' as const), ms: advanceArb }) },
  // A manual clock set back a little: entries then lie in the future, and a requester can be the
  // least recently seen of all (it must still never be the one evicted).
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('adv' as const), ms: fc.integer({ min: -600_000, max: -1 }) }),
  },
);

describe('capacity follows the highest N_policy held (spec f.2)', () => {
  it('counts, held CMIDs and the capacity in force equal the oracle after every step', () => {
    fc.assert(
      fc.property(fc.array(cmdArb, { minLength: 40, maxLength: 220, size: 'max' }), (cmds) => {
        const state = createHostState(
          catalog,
          resolvePolicy({}),
          createIdentity(catalog, new SeededRandom(1), T0),
        );
        const oracles = new Map(APPS.slice(0, 3).map((id) => [id, new CapacityOracle(MAX.get(id)!)]));
        let now = T0;
        for (const c of cmds) {
          if (c.kind === 'adv') now += c.ms;
          else {
            const key = poolKey(c.app);
            const r = handle(state, body(c.cmid, c.app, now, c.n), {
              now,
              peer: '127.0.0.1:1',
              connectionId: 1,
              protocol: 4,
              ndr: 'ndr32',
            });
            expect(r.event.count).toBe(oracles.get(key)!.request(cmidOf(c.cmid), now, c.n));
          }
          for (const [id, oracle] of oracles) {
            const pool = state.pools.get(id)!;
            const want = oracle.view(now);
            expect(
              pool
                .list(now)
                .map((e) => e.cmid)
                .sort(),
            ).toEqual(want.cmids);
            expect(pool.countAt(now)).toBe(want.cmids.length);
            expect(pool.capacityAt(now)).toBe(want.capacity);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
