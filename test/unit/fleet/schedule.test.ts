import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EventQueue,
  InProcessFleetHost,
  licenseState,
  type MachineSpec,
  planFleet,
  runFleet,
} from '../../../src/client/fleet.js';
import { referenceTimeline } from './reference.js';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;

describe('fleet timeline equals a straightforward model of the client schedule', () => {
  it('for random seeds, small sizes, churn', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 0, max: 1_000_000 }),
          windows: fc.integer({ min: 0, max: 40 }),
          servers: fc.integer({ min: 0, max: 8 }),
          office: fc.integer({ min: 0, max: 12 }),
          days: fc.integer({ min: 1, max: 60 }),
          churn: fc.constantFrom(0, 0.02, 0.05, 0.2),
        }),
        async (o) => {
          const plan = planFleet(o);
          const r = await runFleet(plan);
          expect(r.totals.errors).toBe(0);
          expect(r.timeline).toEqual(referenceTimeline(plan));
        },
      ),
      { numRuns: 30 },
    );
  });

  it('is deterministic: the same seed gives the same plan and the same timeline', async () => {
    const a = await runFleet(planFleet({ windows: 30, office: 5, days: 15, seed: 'x', churn: 0.1 }));
    const b = await runFleet(planFleet({ windows: 30, office: 5, days: 15, seed: 'x', churn: 0.1 }));
    expect(a.timeline).toEqual(b.timeline);
    expect(a.machines).toEqual(b.machines);
  });
});

describe('thresholds', () => {
  it('24 Windows clients never activate; a 25th makes them all activate on their next retry', async () => {
    const plan = planFleet({ windows: 24, days: 5, seed: 3 });
    const late = plan.start + 2 * DAY + 5 * 60 * MIN + 12_345;
    const extra: MachineSpec = {
      id: 24,
      kind: 'windows',
      cmid: '25252525-2525-4525-a525-252525252525',
      workstation: 'DESKTOP-LATE025',
      vm: false,
      arrive: late,
      leave: null,
    };
    plan.machines.push(extra);
    const r = await runFleet(plan);
    const ms = r.machines!;
    // Nobody activates while only 24 machines count.
    for (const m of ms) expect(m.firstActivated).not.toBeNull();
    for (const m of ms) expect(m.firstActivated!).toBeGreaterThanOrEqual(late);
    // The 25th activates on its first contact; the others on their next retry, within 120 minutes.
    expect(ms[24]!.firstActivated).toBe(late);
    for (const m of ms.slice(0, 24)) expect(m.firstActivated! - late).toBeLessThanOrEqual(120 * MIN);
    expect(r.timeline.map((row) => row.activated.windows)).toEqual([0, 0, 25, 25, 25]);
    expect(r.timeline.map((row) => row.pools['Windows'])).toEqual([24, 24, 25, 25, 25]);
    // Before the 25th, each of the 24 asked every 120 minutes: 12 requests a day.
    expect(r.timeline[1]!.insufficient).toBe(24 * 12);
    expect(r.timeline[0]!.activations).toBe(0);
  });

  it('servers activate at 5 in the shared Windows pool while clients still wait for 25', async () => {
    const r = await runFleet(planFleet({ windows: 10, servers: 5, days: 2, seed: 8 }));
    expect(r.timeline[0]!.pools['Windows']).toBe(15);
    expect(r.timeline[0]!.activated).toEqual({ windows: 0, server: 5, office: 0 });
  });

  it('Office counts in its own pool and activates at 5', async () => {
    const r = await runFleet(planFleet({ windows: 30, office: 4, days: 3, seed: 2 }));
    expect(r.timeline.at(-1)!.pools).toEqual({ Windows: 30, 'Office2013+': 4 });
    expect(r.timeline.at(-1)!.activated).toEqual({ windows: 30, server: 0, office: 0 });
  });
});

describe('decay after machines leave', () => {
  it('removal: the count falls exactly 30 days after each leaver was last seen', async () => {
    const plan = planFleet({ windows: 30, days: 70, seed: 4 });
    const leave = plan.start + 20 * DAY;
    for (let i = 0; i < 10; i++) plan.machines[i]!.leave = leave;
    const r = await runFleet(plan);
    const last = r.machines!.slice(0, 10).map((m) => m.lastContact!);
    for (const t of last) expect(t).toBeLessThan(leave);
    for (const row of r.timeline) {
      const b = plan.start + row.day * DAY;
      const expected = b <= leave ? 30 : 20 + last.filter((t) => t >= b - 30 * DAY).length;
      expect(row.pools['Windows'], `day ${row.day}`).toBe(expected);
      expect(row.present.windows).toBe(row.day <= 20 ? 30 : 20);
    }
    expect(r.timeline[20]!.left).toBe(10);
    // Still counted 30 days after leaving day 13..20; gone once the last 30-day window has passed.
    expect(r.timeline[42]!.pools['Windows']).toBe(30);
    expect(r.timeline[50]!.pools['Windows']).toBe(20);
    // 20 clients are below 25: after the decay their renewals are count-insufficient, but the
    // activation stays valid for 180 days.
    expect(r.timeline.at(-1)!.activated.windows).toBe(20);
    expect(r.timeline.at(-1)!.insufficient).toBeGreaterThan(0);
  });

  it('churn: departed CMIDs keep counting for 30 days, then drop out', async () => {
    const plan = planFleet({ windows: 12, office: 3, days: 45, churn: 0.1, seed: 21 });
    const r = await runFleet(plan);
    const ms = r.machines!;
    expect(ms.some((m) => m.leave !== null)).toBe(true);
    for (const row of r.timeline) {
      const b = plan.start + row.day * DAY;
      for (const [kind, pool, cap] of [
        ['windows', 'Windows', 50],
        ['office', 'Office2013+', 10],
      ] as const) {
        const counted = ms.filter(
          (m) =>
            m.kind === kind &&
            m.lastContact !== null &&
            m.arrive < b &&
            (m.leave === null || m.leave >= b ? true : m.lastContact >= b - 30 * DAY),
        ).length;
        expect(row.pools[pool], `${pool} day ${row.day}`).toBe(Math.min(cap, counted));
      }
    }
  });
});

describe('building blocks', () => {
  it('EventQueue pops in (time, index) order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 1000 }))),
        (xs) => {
          const q = new EventQueue();
          for (const [t, i] of xs) q.push(t, i);
          const out: [number, number][] = [];
          while (q.size > 0) {
            const t = q.peekTime();
            out.push([t, q.pop()]);
          }
          const sorted = [...xs].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
          expect(out).toEqual(sorted);
        },
      ),
    );
  });

  it('license state: grace, licensed, notification', () => {
    const t = Date.UTC(2026, 0, 1);
    expect(licenseState({ arrive: t, activatedUntil: 0 }, t)).toEqual({ status: 2, minutes: 43_200 });
    expect(licenseState({ arrive: t, activatedUntil: t + 180 * DAY }, t)).toEqual({
      status: 1,
      minutes: 259_200,
    });
    expect(licenseState({ arrive: t, activatedUntil: 0 }, t + 31 * DAY)).toEqual({ status: 5, minutes: 0 });
  });

  it('plans are checked', () => {
    expect(() => planFleet({ churn: 1 })).toThrow(RangeError);
    expect(() => planFleet({ days: 0 })).toThrow(RangeError);
    expect(() => planFleet({ windows: -1 })).toThrow(RangeError);
    expect(() => planFleet({ products: { windows: 'no such product' } })).toThrow(/no product/);
    const p = planFleet({ windows: 2 });
    p.machines[1]!.id = 7;
    return expect(runFleet(p)).rejects.toThrow(/array indexes/);
  });

  it('names machines like Windows does and spreads first contacts over day 0', () => {
    const p = planFleet({ windows: 50, servers: 10, days: 1, seed: 5 });
    for (const m of p.machines) {
      expect(m.workstation).toMatch(m.kind === 'server' ? /^WIN-[A-Z0-9]{11}$/ : /^DESKTOP-[A-Z0-9]{7}$/);
      expect(m.arrive - p.start).toBeGreaterThanOrEqual(0);
      expect(m.arrive - p.start).toBeLessThan(DAY);
    }
    expect(new Set(p.machines.map((m) => m.cmid)).size).toBe(60);
    expect(p.products.windows).toMatchObject({ requiredCount: 25, protocol: 6, pool: 'Windows' });
    expect(p.products.server).toMatchObject({ name: 'Windows Server 2022 Datacenter', requiredCount: 5 });
    expect(p.products.office).toMatchObject({
      name: 'Office LTSC Professional Plus 2024',
      requiredCount: 5,
      pool: 'Office2013+',
    });
  });
});

describe('host reuse', () => {
  it('a host reused for another plan sends that plan’s machines (CMIDs), not the previous ones', async () => {
    const host = new InProcessFleetHost({ seed: 'reuse' });
    const a = planFleet({ windows: 3, days: 1, seed: 'a' });
    const b = planFleet({ windows: 3, days: 1, seed: 'b' });
    await runFleet(a, { host });
    await runFleet(b, { host });
    const cmids = new Set(host.service.clients().map((c) => c.cmid));
    for (const m of [...a.machines, ...b.machines]) expect(cmids.has(m.cmid)).toBe(true);
  });
});
