/**
 * The fleet's client side on a worker thread (InProcessFleetHost `clientThread`): the same run as one
 * thread gives, outcome for outcome, and the host state it leaves is the same.
 */
import { describe, expect, it } from 'vitest';
import { InProcessFleetHost, planFleet, runFleet } from '../../../src/client/fleet.js';

/** A result without its wall-clock fields and the host's description. */
function comparable(r: Awaited<ReturnType<typeof runFleet>>) {
  const { wallMs: _w, requestsPerSecond: _r, host: _h, ...rest } = r;
  return rest;
}

describe('fleet with the client on a worker thread', () => {
  it('gives the single-threaded run exactly: timeline, totals, every machine, the ePID and the pools', async () => {
    const plan = planFleet({ windows: 60, servers: 8, office: 10, days: 40, seed: 'thread', churn: 0.03 });
    const one = new InProcessFleetHost({ seed: plan.seed, start: plan.start });
    const two = new InProcessFleetHost({ seed: plan.seed, start: plan.start, clientThread: true });
    const a = await runFleet(plan, { host: one });
    const b = await runFleet(plan, { host: two });
    expect(b.totals.requests).toBeGreaterThan(500);
    expect(b.totals.activations).toBeGreaterThan(0);
    expect(comparable(b)).toEqual(comparable(a));
    expect(b.host).toContain('worker thread');
    expect(two.epid()).toBe(one.epid());
    expect(two.service.status().pools).toEqual(one.service.status().pools);
  });

  it('with a short activation interval the batches shrink and the run still matches', async () => {
    const plan = planFleet({ windows: 30, days: 5, seed: 'thread-short' });
    const policy = { activationInterval: 15, renewalInterval: 60 };
    const one = new InProcessFleetHost({ seed: plan.seed, start: plan.start, policy });
    const two = new InProcessFleetHost({ seed: plan.seed, start: plan.start, policy, clientThread: true });
    expect(two.batchWindowMs).toBe(0); // no worker before start
    const a = await runFleet(plan, { host: one });
    const b = await runFleet(plan, { host: two });
    expect(two.batchWindowMs).toBe(15 * 60_000);
    expect(comparable(b)).toEqual(comparable(a));
  });

  it('a host error in the middle of a batch fails the run, and the worker is stopped', async () => {
    const plan = planFleet({ windows: 40, days: 3, seed: 'thread-throw' });
    const h = new InProcessFleetHost({ seed: plan.seed, start: plan.start, clientThread: true });
    const real = h.service.handleCall.bind(h.service);
    let calls = 0;
    h.service.handleCall = (...args: Parameters<typeof real>) => {
      if (++calls === 25) throw new Error('store gone');
      return real(...args);
    };
    await expect(runFleet(plan, { host: h })).rejects.toThrow('store gone');
    expect(calls).toBe(25);
    // close() ran (runFleet's finally): a second close has no worker left to stop.
    await expect(h.close()).resolves.toBeUndefined();
  });

  it('such a host runs one plan', async () => {
    const plan = planFleet({ windows: 3, days: 1, seed: 'thread-once' });
    const h = new InProcessFleetHost({ seed: plan.seed, start: plan.start, clientThread: true });
    await runFleet(plan, { host: h });
    await expect(runFleet(plan, { host: h })).rejects.toThrow(/one plan/);
  });
});
