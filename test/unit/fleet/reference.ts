/**
 * A straightforward model of the same fleet schedule, written without the simulator's machinery: no
 * heap (a linear scan for the next contact), no crypto, no host (a plain map per pool with the 30-day
 * expiry and the least-recently-seen eviction of spec f.2/f.3). The fleet's timeline must equal it.
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
  const pools = new Map<string, Map<string, number>>(); // appId -> cmid -> lastSeen
  for (const app of catalog.applications) pools.set(app.id, new Map());
  const capacity = (appId: string) => catalog.application(appId)!.cacheSize;

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
      for (const [cmid, seen] of [...pool]) if (seen < now - RETENTION) pool.delete(cmid);
      if (!pool.has(m.s.cmid) && pool.size >= capacity(product.applicationId)) {
        let oldest: string | null = null;
        for (const [cmid, seen] of pool) if (oldest === null || seen < pool.get(oldest)!) oldest = cmid;
        pool.delete(oldest!);
      }
      pool.set(m.s.cmid, now);
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
      for (const seen of pools.get(appId)!.values()) if (seen >= dayEnd - RETENTION) n++;
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
