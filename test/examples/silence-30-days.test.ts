import fc from 'fast-check';
import { expect, test } from 'vitest';
import {
  arbitraries,
  createMemoryHost,
  DAY_MS,
  type HostStep,
  playSteps,
  type SeenRequest,
} from '../../src/testing/index.js';

// The tool under test: a monitor that says when the host's count will be back to zero if no machine
// asks again: 30 days after the last request of the machine seen last (the host still counts a
// machine at exactly 30 days, and drops it 1 ms later).
type Seen = Pick<SeenRequest, 'cmid' | 'time'>;
function everyoneGoneAt(requests: Seen[]): number {
  const last = new Map<string, number>();
  for (const r of requests) last.set(r.cmid, Math.max(last.get(r.cmid) ?? r.time, r.time));
  return Math.max(...last.values()) + 30 * DAY_MS + 1;
}

// Requests from 8 machines of every class, with the clock moving forward up to 40 days at a step.
const activity = arbitraries.hostSteps({ max: 8, maxLength: 30, minLength: 1, maxJumpMs: 0 });

function agreesWithTheHost(goneAt: (requests: Seen[]) => number) {
  return fc.property(activity, (steps: HostStep[]) => {
    const host = createMemoryHost({ fast: true });
    const { requests } = playSteps(host, steps);
    fc.pre(requests.length > 0);
    const total = () => Object.values(host.counts()).reduce((a, b) => a + b, 0);
    // After 30 days of silence every machine has left the count, and not a millisecond earlier.
    host.setTime(goneAt(requests) - 1);
    expect(total()).toBeGreaterThan(0);
    host.setTime(goneAt(requests));
    expect(total()).toBe(0);
  });
}

test('after 30 days of silence every machine has left the count', () => {
  fc.assert(agreesWithTheHost(everyoneGoneAt), { numRuns: 1000 });
});

test('a monitor that dates machines by their first request is caught; the counterexample is one machine asking twice', () => {
  const byFirstRequest = (requests: Seen[]) => {
    const first = new Map<string, number>();
    for (const r of requests) if (!first.has(r.cmid)) first.set(r.cmid, r.time);
    return Math.max(...first.values()) + 30 * DAY_MS + 1;
  };
  const result = fc.check(agreesWithTheHost(byFirstRequest), { numRuns: 1000, seed: 1 });
  expect(result.failed).toBe(true);
  // Shrunk: one machine asks, 1 ms passes, the same machine asks again. The monitor says it is gone
  // 30 days and 1 ms after the first request; the host still counts it then, 30 days after its second.
  const [steps] = result.counterexample!;
  const [first] = steps;
  const pc = first?.kind === 'request' ? first.machine.workstation : 'not a request';
  expect(
    steps.map((s) => (s.kind === 'request' ? `request ${s.machine.workstation}` : `${s.kind} ${s.ms} ms`)),
  ).toEqual([`request ${pc}`, 'advance 1 ms', `request ${pc}`]);
});
