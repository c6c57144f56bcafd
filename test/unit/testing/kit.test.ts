/**
 * kmslab/testing itself: the count model's rules on fixed cases, the memory host (full crypto and fast
 * mode), the KMS request arbitraries (valid ones are answered and verify, mutated ones get the answer
 * their mutation says), and readable counterexamples.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { verifyResponse } from '../../../src/kms/envelope.js';
import { HResult } from '../../../src/kms/hresult.js';
import { unwrapResponseStub } from '../../../src/kms/stub.js';
import {
  arbitraries,
  cmidNumber,
  cmidOf,
  countModel,
  createMemoryHost,
  DAY_MS,
  machineOf,
  playSteps,
  type SeenRequest,
} from '../../../src/testing/index.js';

const T0 = Date.UTC(2026, 0, 1);
const server = machineOf(1, 'windows-server');
const client = machineOf(1, 'windows-client');
const seen = (id: number, m = server, time = T0): SeenRequest => ({
  cmid: cmidOf(id),
  applicationId: m.applicationId,
  requiredCount: m.requiredCount,
  time,
});

describe('countModel', () => {
  it('twelve servers alone are told 1..10, 10, 10; a Windows client then lifts the capacity to 50', () => {
    const reqs = Array.from({ length: 12 }, (_, i) => seen(i + 1));
    expect(countModel(reqs, T0).answers).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10]);
    const withClient = countModel([...reqs, seen(13, client)], T0);
    // Servers 1 and 2 were evicted (least recently seen); they are new again if they ask.
    expect(withClient.answers.at(-1)).toBe(11);
    expect(withClient.pools.windows.capacity).toBe(50);
    expect(withClient.wouldActivate(seen(1)).count).toBe(12);
  });

  it('back to a capacity of 10 when the last client ages out, keeping the most recently seen', () => {
    const reqs = [
      seen(100, client),
      ...Array.from({ length: 12 }, (_, i) => seen(i + 1, server, T0 + i + 1)),
    ];
    const m = countModel(reqs, T0 + 30 * DAY_MS + 1);
    expect(m.pools.windows).toMatchObject({ count: 10, capacity: 10 });
    expect(m.pools.windows.entries.map((e) => cmidNumber(e.cmid))).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('counts a CMID at exactly 30 days after its last request and not 1 ms later', () => {
    const m = (now: number) => countModel([seen(1), seen(1, server, T0 + DAY_MS)], now).count();
    expect(m(T0 + 31 * DAY_MS)).toBe(1);
    expect(m(T0 + 31 * DAY_MS + 1)).toBe(0);
  });

  it('one pool per application; unknown applications count as Windows; N over 1000 is not counted', () => {
    const office = machineOf(2, 'office2010');
    const m = countModel(
      [
        seen(1),
        seen(2, office),
        { ...seen(3), applicationId: 'deadbeef-0000-4000-8000-000000000000' },
        { ...seen(4), requiredCount: 1001 },
      ],
      T0,
    );
    expect([m.count('windows'), m.count('office2010'), m.count('office2013')]).toEqual([2, 1, 0]);
    expect(m.answers).toEqual([1, 1, 2, 0]);
    expect(m.wouldActivate({ ...seen(5), requiredCount: 3 })).toEqual({ count: 3, activated: true });
  });
});

describe('createMemoryHost', () => {
  it('answers through the real service, verified, with full crypto and in fast mode alike', () => {
    const steps = Array.from({ length: 6 }, (_, i) => ({
      kind: 'request' as const,
      machine: machineOf(i + 1, i % 2 ? 'windows-server' : 'office2013'),
      skewMs: 0,
    }));
    const full = playSteps(createMemoryHost({ seed: 's' }), steps).answers;
    const fast = playSteps(createMemoryHost({ seed: 's', fast: true }), steps).answers;
    expect(full.map((a) => [a.count, a.activated, a.event.protocol])).toEqual([
      [1, false, 6],
      [1, false, 6],
      [2, false, 6],
      [2, false, 6],
      [3, false, 6],
      [3, false, 6],
    ]);
    expect(fast.map((a) => [a.count, a.activated, a.event.protocol])).toEqual(
      full.map((a) => [a.count, a.activated, 4]),
    );
    expect(full[0]!.hwid).toMatch(/^[0-9A-F]{16}$/);
  });

  it('reports the count, the events and moves its clock; a jump back is allowed', () => {
    const host = createMemoryHost();
    const r = host.request({ cmid: cmidOf(1), product: 'Windows Server 2022 Standard' });
    expect(r).toMatchObject({ hresult: HResult.COUNT_INSUFFICIENT, count: 1, requiredCount: 5 });
    expect(host.events().map((e) => e.cmid)).toEqual([cmidOf(1)]);
    expect(host.advance('30d')).toBe(T0 + 30 * DAY_MS);
    expect(host.count('windows')).toBe(1);
    host.advance(1);
    expect(host.counts()).toEqual({ windows: 0, office2010: 0, office2013: 0 });
    expect(host.setTime(T0)).toBe(T0);
    expect(host.count()).toBe(1);
  });

  it("checks the answer's stub as the client does: one byte too many is an error, not an answer", () => {
    const host = createMemoryHost();
    const handleCall = host.service.handleCall.bind(host.service);
    let extra = 0;
    host.service.handleCall = (...args: Parameters<typeof handleCall>) => {
      const o = handleCall(...args);
      if (o.kind === 'response' && extra > 0)
        o.stub = Uint8Array.from([...o.stub, ...new Array(extra).fill(0)]);
      return o;
    };
    expect(host.request({ cmid: cmidOf(1) }).count).toBe(1);
    extra = 1;
    expect(() => host.request({ cmid: cmidOf(2) })).toThrow(/response stub of \d+ bytes/);
  });
});

describe('arbitraries.kmsRequest / mutatedKmsRequest', () => {
  it('a valid request of any version and syntax is answered, counted, and its answer verifies', () => {
    fc.assert(
      fc.property(arbitraries.kmsRequest(), (req) => {
        const host = createMemoryHost();
        const out = host.exchange(req.stub, req.ndr);
        expect(out.kind).toBe('response');
        if (out.kind !== 'response') return;
        const { hresult, message } = unwrapResponseStub(out.stub, req.ndr);
        expect(hresult).toBe(0);
        expect(verifyResponse(message!, req.context).body.currentCount).toBe(1);
      }),
      { numRuns: 200 },
    );
  });

  it('a mutated request gets the answer its mutation says, and only a longer message is counted', () => {
    fc.assert(
      fc.property(arbitraries.mutatedKmsRequest(), (req) => {
        const host = createMemoryHost();
        const out = host.exchange(req.stub, req.ndr);
        const counted = Object.values(host.counts()).reduce((a, b) => a + b, 0);
        if (req.expect === 'fault') expect(out).toMatchObject({ kind: 'fault', status: 0x6f7 });
        else if (req.expect === 'invalid-data') {
          expect(out.kind).toBe('response');
          if (out.kind === 'response') expect(unwrapResponseStub(out.stub, req.ndr).hresult).toBe(0x8007000d);
        } else expect(out.kind === 'response' && unwrapResponseStub(out.stub, req.ndr).hresult).toBe(0);
        expect(counted).toBe(req.expect === 'counted' ? 1 : 0);
      }),
      { numRuns: 300 },
    );
  });

  it('fleets and host scripts print as machines and steps, not GUIDs', () => {
    expect(fc.stringify(machineOf(1, 'windows-client'))).toBe('PC-1 windows-client N=25');
    const [f] = fc.sample(arbitraries.fleet({ minMachines: 1, maxMachines: 1 }), { numRuns: 1, seed: 5 });
    expect(fc.stringify(f!.machines)).toMatch(
      /^\[PC-1 (windows-server|windows-client|office2010|office2013) N=(5|25) from day \d+ \d\d:00 (on|until day \d+ \d\d:00)\]$/,
    );
    const [steps] = fc.sample(arbitraries.hostSteps({ minLength: 20, max: 1, classes: ['windows-client'] }), {
      numRuns: 1,
      seed: 2,
    });
    const duration = String.raw`-?\d+(ms|s|m|h|d|w)( \d+(ms|s|m|h))*`;
    for (const s of steps!) {
      expect(fc.stringify(s)).toMatch(
        new RegExp(
          s.kind === 'request'
            ? `^request from PC-1 windows-client N=25( \\(clock ${duration}\\))?$`
            : `^${s.kind} ${duration}$`,
        ),
      );
    }
  });

  it('prints readably in a counterexample', () => {
    const [req] = fc.sample(arbitraries.kmsRequest({ versions: [6], ndr: ['ndr32'], max: 3 }), {
      numRuns: 1,
      seed: 3,
    });
    expect(fc.stringify(req)).toMatch(
      /^KMS V6 ndr32 request from PC-[1-3] \(00000000-0000-4000-8000-00000000000[1-3], N=(5|25)\)$/,
    );
  });
});
