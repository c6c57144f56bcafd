/**
 * A straightforward reference model of the count pools (spec f.1–f.3), written independently of
 * src/host/pool.ts, and the arbitraries the host properties share.
 */
import fc from 'fast-check';
import {
  buildCatalog,
  type Catalog,
  OFFICE2010_APP_ID,
  OFFICE2013_APP_ID,
  WINDOWS_APP_ID,
} from '../../../src/catalog/products.js';
import raw from '../../../src/catalog/products.json' with { type: 'json' };
import { DAY } from '../../../src/host/clock.js';
import type { KmsRequestBody } from '../../../src/kms/messages.js';
import { fileTimeFromMs } from '../../../src/wire/filetime.js';
import { NIL_GUID } from '../../../src/wire/guid.js';

export const RETENTION = 30 * DAY;
export const UNKNOWN_APP_ID = 'deadbeef-0000-4000-8000-00000000a990';
export const UNKNOWN_KMS_ID = 'deadbeef-0000-4000-8000-00000000b990';

/** Index 0..2: the three applications of the catalog; 3: an application id no catalog knows. */
export const APPS = [WINDOWS_APP_ID, OFFICE2010_APP_ID, OFFICE2013_APP_ID, UNKNOWN_APP_ID] as const;
/** A KMS id of each application (Windows 10, Office 2010, Office 2016) and an unknown one. */
export const KMS_IDS = [
  '58e2134f-8e11-4d17-9cb2-91069c151148',
  'e85af946-2e25-47b7-83e1-bebcebeac611',
  '85b5f61b-320b-4be3-814a-b76b2bfafc82',
  UNKNOWN_KMS_ID,
] as const;

/** The pool an application counts in: its own, or Windows' for an unknown one (spec f.3). */
export function poolKey(app: number): string {
  return app === 3 ? WINDOWS_APP_ID : APPS[app]!;
}

export function cmidOf(i: number): string {
  return `c0ffee00-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
}

export function body(cmid: number, app: number, nowMs: number, requiredClientCount = 25): KmsRequestBody {
  return {
    minorVersion: 0,
    majorVersion: 4,
    vmInfo: 0,
    licenseStatus: 2,
    bindingExpiration: 43_200,
    applicationId: APPS[app]!,
    skuId: NIL_GUID,
    kmsId: KMS_IDS[app]!,
    cmid: cmidOf(cmid),
    requiredClientCount,
    clientTime: fileTimeFromMs(nowMs),
    previousCmid: NIL_GUID,
    workstation: `ws-${cmid}`,
  };
}

/** The shipped catalog with the cache sizes replaced, to reach the capacity with few CMIDs. */
export function catalogWithCapacities(windows: number, office2010: number, office2013: number): Catalog {
  const sizes: Record<string, number> = {
    [WINDOWS_APP_ID]: windows,
    [OFFICE2010_APP_ID]: office2010,
    [OFFICE2013_APP_ID]: office2013,
  };
  const data = raw as unknown as { applications: { id: string; cacheSize: number }[] };
  return buildCatalog({
    ...(raw as object),
    applications: data.applications.map((a) => ({ ...a, cacheSize: sizes[a.id] ?? a.cacheSize })),
  });
}

interface RefEntry {
  firstSeen: number;
  lastSeen: number;
}

/**
 * One pool as spec f.3 words it: purge `lastSeen < now − 30 days`; refresh a known CMID; otherwise,
 * when full, evict the entry with the oldest lastSeen (ties: the earliest firstSeen, then the smallest
 * CMID), then insert. The count is the size after the request.
 */
export class RefPool {
  readonly entries = new Map<string, RefEntry>();
  constructor(readonly capacity: number) {}

  private purge(now: number): void {
    for (const [k, e] of this.entries) if (e.lastSeen < now - RETENTION) this.entries.delete(k);
  }

  touch(cmid: string, now: number): number {
    this.purge(now);
    const e = this.entries.get(cmid);
    if (e) {
      e.lastSeen = now;
    } else {
      if (this.entries.size >= this.capacity) {
        let victim: [string, RefEntry] | undefined;
        for (const kv of this.entries) {
          const [k, v] = kv;
          if (
            !victim ||
            v.lastSeen < victim[1].lastSeen ||
            (v.lastSeen === victim[1].lastSeen &&
              (v.firstSeen < victim[1].firstSeen || (v.firstSeen === victim[1].firstSeen && k < victim[0])))
          ) {
            victim = kv;
          }
        }
        this.entries.delete(victim![0]);
      }
      this.entries.set(cmid, { firstSeen: now, lastSeen: now });
    }
    return this.entries.size;
  }

  /** Live CMIDs at `now`, sorted. */
  live(now: number): string[] {
    return [...this.entries]
      .filter(([, e]) => e.lastSeen >= now - RETENTION)
      .map(([k]) => k)
      .sort();
  }
}

/** The independent count "distinct CMIDs whose last request lies within 30 days, capped" (spec glossary). */
export function distinctWithinWindow(
  history: { cmid: string; pool: string; t: number }[],
  pool: string,
  now: number,
  cap: number,
): number {
  const last = new Map<string, number>();
  for (const h of history) if (h.pool === pool) last.set(h.cmid, h.t);
  let n = 0;
  for (const t of last.values()) if (t >= now - RETENTION) n++;
  return Math.min(n, cap);
}

export type Cmd = { kind: 'req'; cmid: number; app: number } | { kind: 'adv'; ms: number };

/** Clock advances of 0..40 days in ms, biased to 0 and to the 30-day boundary (± 1 ms). */
export const advanceArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 3, arbitrary: fc.constantFrom(RETENTION, RETENTION - 1, RETENTION + 1, DAY, 7 * DAY, 1) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 40 * DAY }) },
);

export function cmdArb(cmids = 14): fc.Arbitrary<Cmd> {
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant('req' as const),
        cmid: fc.nat({ max: cmids - 1 }),
        app: fc.nat({ max: 3 }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('adv' as const), ms: advanceArb }) },
  );
}

/** Capacities: the shipped ones (50, 10, 10) or small ones so that eviction happens often. */
export const capacitiesArb: fc.Arbitrary<readonly [number, number, number]> = fc.oneof(
  fc.constant([50, 10, 10] as const),
  fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 })),
);
