import fc from 'fast-check';
import { expect, test } from 'vitest';
import { arbitraries, createMemoryHost, type Fleet, hostTarget, playFleet } from '../../src/testing/index.js';

// The tool under test: predicts the day each machine of a fleet activates, by counting the distinct
// machines each pool has seen so far (enough for fleets shorter than the 30-day retention). It times
// the requests with playFleet, as KMS clients do: a retry every 2 h until activated, then every 7 days.
type Threshold = (count: number, needed: number) => boolean;
function predictActivationDays(fleet: Fleet, reached: Threshold = (count, needed) => count >= needed) {
  const seen = new Map<string, Set<string>>();
  const played = playFleet(fleet, (machine) => {
    const pool = seen.get(machine.pool) ?? new Set<string>();
    seen.set(machine.pool, pool.add(machine.cmid));
    return { activated: reached(pool.size, machine.requiredCount) };
  });
  return played.machines.map((m) => m.activationDay);
}

// Up to 12 machines of every class (Windows clients and servers, Office 2010, Office 2013+), 1-4 days.
const fleets = arbitraries.fleet({ maxMachines: 12, maxDays: 4 });

function agreesWithTheHost(predict: (fleet: Fleet) => (number | null)[]) {
  return fc.property(fleets, (fleet) => {
    const host = createMemoryHost({ fast: true });
    const actual = playFleet(fleet, hostTarget(host)).machines.map((m) => m.activationDay);
    expect(predict(fleet)).toEqual(actual);
  });
}

test('the predicted activation day of every machine is the host’s, for arbitrary fleets', () => {
  fc.assert(agreesWithTheHost(predictActivationDays), { numRuns: 1000 });
});

test('an off-by-one prediction (count > needed) is caught; the counterexample is 5 servers on day 0', () => {
  const offByOne = (fleet: Fleet) => predictActivationDays(fleet, (count, needed) => count > needed);
  const result = fc.check(agreesWithTheHost(offByOne), { numRuns: 1000, seed: 1 });
  expect(result.failed).toBe(true);
  // Shrunk: one day, five Windows Server machines first seen at hour 0 who never leave. The host
  // activates the fifth (count 5 ≥ 5) and the other four at their retry; the tool predicts none.
  const [fleet] = result.counterexample!;
  expect(fleet.days).toBe(1);
  expect(fleet.machines.map((m) => `${m.workstation} ${m.productClass} +${m.firstContact}ms`)).toEqual([
    'PC-1 windows-server +0ms',
    'PC-2 windows-server +0ms',
    'PC-3 windows-server +0ms',
    'PC-4 windows-server +0ms',
    'PC-5 windows-server +0ms',
  ]);
});
