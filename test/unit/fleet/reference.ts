/**
 * A straightforward model of the same fleet schedule, written without the simulator's machinery: no
 * heap (a linear scan for the next contact), no crypto, no host (a plain map per pool with the 30-day
 * expiry, the capacity of twice the highest RequiredClientCount held, within [10, cacheSize], and the
 * least-recently-seen eviction of spec f.2/f.3). The fleet's timeline must equal it.
 */
import { defaultCatalog } from '../../../src/catalog/products.js';
import type { FleetPlan, MachineKind, PerKind, TimelineRow } from '../../../src/client/fleet.js';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const RETENTION = 30 * DAY;
const VALIDITY = 180 * DAY;

export function referenceTimeline(plan: FleetPlan, activationMin = 120, renewalMin = 10_080): TimelineRow[] {
  const catalog = defaultCatalog();
  const kinds: MachineKind[] = ['windows', 'server', 'office'];
  const poolNames = new Map<string, string>();
  for (const k of kinds) {
    if (plan.machines.some((m) => m.kind === k))
      poolNames.set(plan.products[k].applicationId, plan.products[k].pool);
  }
  const pools = new Map<string, Map<string, { seen: number; required: number }>>(); // appId -> cmid -> …
  for (const app of catalog.applications) pools.set(app.id, new Map());
  const capacity = (appId: string, pool: Map<string, { required: number }>) => {
    let high = 0;
    for (const e of pool.values()) high = Math.max(high, e.required);
    return Math.min(catalog.application(appId)!.cacheSize, Math.max(10, 2 * high));
  };

  const ms = plan.machines.map((s) => ({ s, next: s.arrive, activatedUntil: 0, ever: false }));
  const rows: TimelineRow[] = [];
  for (let d = 0; d < plan.days; d++) {
    const dayStart = plan.start + d * DAY;
    const dayEnd = dayStart + DAY;
    const row = { requests: 0, activations: 0, insufficient: 0, errors: 0, firstActivations: 0 };
    for (;;) {
      // The next contact: earliest time, then lowest machine index.
      let best = -1;
      for (let i = 0; i < ms.length; i++) {
        const m = ms[i]!;
        if (m.s.leave !== null && m.next >= m.s.leave) continue;
        if (m.next >= dayEnd) continue;
        if (best < 0 || m.next < ms[best]!.next) best = i;
      }
      if (best < 0) break;
      const m = ms[best]!;
      const now = m.next;
      const product = plan.products[m.s.kind];
      const pool = pools.get(product.applicationId)!;
      for (const [cmid, e] of [...pool]) if (e.seen < now - RETENTION) pool.delete(cmid);
      pool.set(m.s.cmid, { seen: now, required: product.requiredCount });
      // The requester is counted (and its N_policy lifts the capacity) before anyone is evicted.
      while (pool.size > capacity(product.applicationId, pool)) {
        let oldest: string | null = null;
        for (const [cmid, e] of pool) {
          if (cmid !== m.s.cmid && (oldest === null || e.seen < pool.get(oldest)!.seen)) oldest = cmid;
        }
        pool.delete(oldest!);
      }
      const count = pool.size;
      row.requests++;
      if (count >= product.requiredCount) {
        row.activations++;
        if (!m.ever) row.firstActivations++;
        m.ever = true;
        m.activatedUntil = now + VALIDITY;
        m.next = now + renewalMin * MIN;
      } else {
        row.insufficient++;
        m.next = now + activationMin * MIN;
      }
    }
    const present: PerKind = { windows: 0, server: 0, office: 0 };
    const activated: PerKind = { windows: 0, server: 0, office: 0 };
    let arrived = 0;
    let left = 0;
    for (const m of ms) {
      if (m.s.arrive >= dayStart && m.s.arrive < dayEnd) arrived++;
      if (m.s.leave !== null && m.s.leave >= dayStart && m.s.leave < dayEnd) left++;
      if (m.s.arrive < dayEnd && (m.s.leave === null || m.s.leave >= dayEnd)) {
        present[m.s.kind]++;
        if (m.activatedUntil > dayEnd) activated[m.s.kind]++;
      }
    }
    const counts: Record<string, number> = {};
    for (const [appId, name] of poolNames) {
      let n = 0;
      for (const e of pools.get(appId)!.values()) if (e.seen >= dayEnd - RETENTION) n++;
      counts[name] = n;
    }
    rows.push({
      day: d + 1,
      date: new Date(dayStart).toISOString().slice(0, 10),
      pools: counts,
      present,
      activated,
      ...row,
      arrived,
      left,
    });
  }
  return rows;
}
