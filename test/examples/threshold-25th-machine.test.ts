import fc from 'fast-check';
import { expect, test } from 'vitest';
import {
  arbitraries,
  createMemoryHost,
  DAY_MS,
  HOUR_MS,
  type HostStep,
  playSteps,
} from '../../src/testing/index.js';

// The tool under test: a dashboard tile that tells whether Windows clients can activate yet, from the
// requests it has logged (machine and time). Windows clients (N = 25) and servers share one count.
type Logged = { cmid: string; time: number };
function distinctWindowsMachines(log: Logged[], now: number): number {
  return new Set(log.filter((r) => r.time >= now - 30 * DAY_MS).map((r) => r.cmid)).size;
}

// Requests from Windows machines 1..30 (a machine may ask many times), a few hours apart at most.
const requests = arbitraries.hostSteps({
  max: 30,
  maxLength: 60,
  size: 'max',
  classes: ['windows-client', 'windows-server'],
  maxAdvanceMs: 2 * HOUR_MS,
  maxJumpMs: 0,
  skew: false,
});

function agreesWithTheHost(tally: (log: Logged[], now: number) => number) {
  return fc.property(requests, (steps: HostStep[]) => {
    const host = createMemoryHost({ fast: true });
    const log: Logged[] = [];
    playSteps(host, steps, (step, _, answer) => {
      if (step.kind !== 'request' || answer === null) return;
      log.push({ cmid: step.machine.cmid, time: host.now() });
      if (step.machine.productClass !== 'windows-client') return;
      // No Windows client activates before the 25th distinct Windows machine is counted, and every one
      // activates from then on: the tile agrees with the host's answer at every request.
      expect(answer.activated).toBe(tally(log, host.now()) >= 25);
    });
  });
}

test('no Windows client activates before the 25th distinct Windows machine is counted', () => {
  fc.assert(agreesWithTheHost(distinctWindowsMachines), { numRuns: 1000 });
});

test('a tile that counts requests instead of machines is caught; the counterexample is one client asking 25 times', () => {
  const countsRequests = (log: Logged[]) => log.length;
  const result = fc.check(agreesWithTheHost(countsRequests), { numRuns: 1000, seed: 1 });
  expect(result.failed).toBe(true);
  // Shrunk: 25 requests from one Windows client at one instant. The tile says 25; the host counts 1.
  const [steps] = result.counterexample!;
  expect(
    steps.map((s) => (s.kind === 'request' ? `${s.machine.workstation} ${s.machine.productClass}` : s.kind)),
  ).toEqual(Array(25).fill('PC-1 windows-client'));
});
