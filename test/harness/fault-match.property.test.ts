/**
 * Faults are matched by their rules and by nothing else: the pure matcher against a reference model
 * over arbitrary requests and rules, the engine's per-rule counters and merged answers, seeded
 * probabilities, and the validator.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileRules,
  FaultEngine,
  type FaultMatch,
  type FaultRule,
  type FaultSubject,
  matchesConditions,
  nthMatcher,
  parseFaultRules,
  validateFaultRules,
} from '../../src/harness/faults.js';
import { ManualClock } from '../../src/host/clock.js';
import type { CallInfo } from '../../src/host/service.js';
import type { KmsRequestBody } from '../../src/kms/messages.js';

const G = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const guid = fc.integer({ min: 1, max: 4 }).map(G);
const ORIGIN = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;

const subject = fc.record({
  peer: fc
    .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1024, max: 1030 }))
    .map(([a, p]) => `127.0.0.${a}:${p}`),
  time: fc.integer({ min: 0, max: 10 * DAY }).map((t) => ORIGIN + t),
  nth: fc.integer({ min: 1, max: 12 }),
  request: fc.record({
    applicationId: guid,
    kmsId: guid,
    skuId: guid,
    cmid: guid,
    protocol: fc.constantFrom(4, 5, 6),
  }),
});

const some = <T>(a: fc.Arbitrary<T>) =>
  fc.option(fc.array(a, { minLength: 1, maxLength: 3 }), { nil: undefined });
const matchArb: fc.Arbitrary<FaultMatch> = fc
  .record({
    application: some(guid),
    kmsId: some(guid),
    sku: some(guid),
    cmid: some(guid),
    protocol: some(fc.constantFrom(4, 5, 6)),
    peer: some(fc.constantFrom('127.0.0.1', '127.0.0.2', '127.0.0.*', '127.0.0.3:1025', '*:1024')),
    nth: fc.option(
      fc.oneof(
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 4 }),
        fc.record({
          from: fc.integer({ min: 1, max: 6 }),
          to: fc.integer({ min: 6, max: 12 }),
          every: fc.integer({ min: 1, max: 3 }),
        }),
      ),
      { nil: undefined },
    ),
    window: fc.option(
      fc.record({
        from: fc.integer({ min: 0, max: 10 }).map((d) => `${d}d`),
        to: fc.integer({ min: 0, max: 10 }).map((d) => `${d}d`),
      }),
      { nil: undefined },
    ),
  })
  .map((m) => Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined)) as FaultMatch);

/** The reference: every condition given holds; written independently of the implementation. */
function reference(m: FaultMatch, s: FaultSubject): boolean {
  const r = s.request!;
  const any = <T>(v: T | T[] | undefined, x: T) =>
    v === undefined || (Array.isArray(v) ? v : [v]).includes(x);
  const addr = s.peer.split(':')[0]!;
  const port = s.peer.split(':')[1]!;
  const peerOk = (p: string) => {
    if (p === '127.0.0.*') return addr.startsWith('127.0.0.');
    if (p === '*:1024') return port === '1024';
    return p.includes(':') ? p === s.peer : p === addr;
  };
  const nthOk = () => {
    const n = m.nth;
    if (n === undefined) return true;
    if (typeof n === 'number') return s.nth === n;
    if (Array.isArray(n)) return n.includes(s.nth);
    const from = n.from ?? 1;
    return s.nth >= from && s.nth <= (n.to ?? Infinity) && (s.nth - from) % (n.every ?? 1) === 0;
  };
  const winOk = () => {
    if (!m.window) return true;
    const from = ORIGIN + Number.parseInt(String(m.window.from), 10) * DAY;
    const to = ORIGIN + Number.parseInt(String(m.window.to), 10) * DAY;
    return s.time >= from && s.time < to;
  };
  return (
    any(m.application, r.applicationId) &&
    any(m.kmsId, r.kmsId) &&
    any(m.sku, r.skuId) &&
    any(m.cmid, r.cmid) &&
    any(m.protocol, r.protocol) &&
    (m.peer === undefined || (m.peer as string[]).some(peerOk)) &&
    nthOk() &&
    winOk()
  );
}

const compile = (m: FaultMatch) =>
  compileRules(parseFaultRules([{ match: m, action: { type: 'wrong-cmid' } }]), ORIGIN)[0]!;

describe('fault matching (property)', () => {
  it('a call rule matches exactly the requests its conditions describe', () => {
    fc.assert(
      fc.property(matchArb, subject, (m, s) => {
        const subj: FaultSubject = { level: 'call', ...s };
        expect(matchesConditions(compile(m), subj)).toBe(reference(m, subj));
      }),
      { numRuns: 3000 },
    );
  });

  it('a rule built from a request matches it; changing any one field it names makes it miss', () => {
    const fields = ['application', 'kmsId', 'sku', 'cmid', 'protocol'] as const;
    fc.assert(
      fc.property(subject, fc.subarray([...fields], { minLength: 1 }), fc.nat(), (s, chosen, pick) => {
        const r = s.request;
        const value = {
          application: r.applicationId,
          kmsId: r.kmsId,
          sku: r.skuId,
          cmid: r.cmid,
          protocol: r.protocol,
        };
        const m: FaultMatch = Object.fromEntries(chosen.map((k) => [k, value[k]]));
        const subj: FaultSubject = { level: 'call', ...s };
        const rule = compile(m);
        expect(matchesConditions(rule, subj)).toBe(true);
        // Another level never matches a call rule.
        expect(matchesConditions(rule, { ...subj, level: 'bind' })).toBe(false);
        const k = chosen[pick % chosen.length]!;
        const other = { ...r };
        if (k === 'protocol') other.protocol = r.protocol === 6 ? 5 : 6;
        else {
          const key = k === 'application' ? 'applicationId' : k === 'sku' ? 'skuId' : k;
          other[key] = G(99);
        }
        expect(matchesConditions(rule, { ...subj, request: other })).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });

  it('the engine fires, in order, exactly the rules whose conditions and per-rule counters hold', () => {
    const ruleArb = fc.record({
      match: matchArb.map((m) => ({ ...m, window: undefined })),
      ruleNth: fc.option(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }), {
        nil: undefined,
      }),
      action: fc.constantFrom<FaultRule['action']>(
        { type: 'hresult', hresult: 0xc004f039 },
        { type: 'count', count: 7 },
        { type: 'wrong-time' },
        { type: 'delay-response', ms: 0 },
      ),
    });
    fc.assert(
      fc.property(
        fc.array(ruleArb, { minLength: 1, maxLength: 4 }),
        fc.array(subject, { minLength: 1, maxLength: 15 }),
        (specs, subjects) => {
          const rules: FaultRule[] = specs.map((sp, i) => {
            const match: FaultMatch = { ...sp.match };
            delete match.window;
            delete match.nth;
            if (sp.ruleNth) match.ruleNth = sp.ruleNth;
            return { name: `r${i}`, match, action: sp.action };
          });
          const clock = new ManualClock(ORIGIN);
          const engine = new FaultEngine({ seed: 1, clock, origin: ORIGIN });
          engine.setRules(rules);
          const fired: string[][] = [];
          engine.onFault((f) => fired[fired.length - 1]!.push(f.rule));
          const seen = rules.map(() => 0);
          subjects.forEach((s) => {
            fired.push([]);
            clock.set(s.time);
            const req = { ...s.request, skuId: s.request.skuId, clientTime: 0n } as unknown as KmsRequestBody;
            const info: CallInfo = {
              peer: s.peer,
              connectionId: 1,
              protocol: s.request.protocol as 4,
              ndr: 'ndr32',
            };
            const got = engine.call(req, info);
            const want = rules.filter((r, i) => {
              const { ruleNth, ...m } = r.match!;
              if (!reference(m, { level: 'call', ...s, nth: 1 })) return false;
              seen[i]! += 1;
              return !ruleNth || (ruleNth as number[]).includes(seen[i]!);
            });
            expect(fired[fired.length - 1]).toEqual(want.map((r) => r.name));
            expect(got?.name ?? null).toBe(want.length ? want.map((r) => r.name).join('+') : null);
            const first = (t: string) => want.find((r) => r.action.type === t);
            expect(got?.result.hresult).toBe(first('hresult') ? 0xc004f039 : undefined);
            expect(got?.result.count).toBe(first('count') ? 7 : undefined);
            expect(got?.result.clientTime).toBe(first('wrong-time') ? 10_000_000n : undefined);
            expect(got?.delivery.delayMs).toBe(first('delay-response') ? 0 : undefined);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('probabilities are seeded: the same seed gives the same draws; 0 never fires, 1 always does', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 60 }),
        fc.string(),
        (p, n, seed) => {
          const run = (s: string) => {
            const clock = new ManualClock(ORIGIN);
            const e = new FaultEngine({ seed: s, clock });
            e.setRules([{ name: 'p', match: { probability: p }, action: { type: 'refuse-connection' } }]);
            return Array.from({ length: n }, () => e.accept('127.0.0.1:1000'));
          };
          const a = run(seed);
          expect(run(seed)).toEqual(a);
          if (p === 0) expect(a.every((x) => x)).toBe(true);
          if (p === 1) expect(a.every((x) => !x)).toBe(true);
        },
      ),
    );
    const clock = new ManualClock(ORIGIN);
    const e = new FaultEngine({ seed: 'rate', clock });
    e.setRules([{ match: { probability: 0.3 }, action: { type: 'refuse-connection' } }]);
    const refused = Array.from({ length: 2000 }, () => e.accept('p')).filter((x) => !x).length;
    expect(refused).toBeGreaterThan(500);
    expect(refused).toBeLessThan(700);
  });

  it('nth specs', () => {
    expect([1, 2, 3, 4, 5, 6, 7].filter(nthMatcher({ from: 2, to: 6, every: 2 }))).toEqual([2, 4, 6]);
    expect([1, 2, 3].filter(nthMatcher([1, 3]))).toEqual([1, 3]);
    expect([1, 2, 3].filter(nthMatcher(2))).toEqual([2]);
  });
});

describe('fault rule validation', () => {
  it('bind and connection rules cannot match KMS fields', () => {
    for (const type of [
      'delay-bind',
      'close-after-bind',
      'bind-nak',
      'reject-contexts',
      'refuse-connection',
    ]) {
      const r = validateFaultRules([
        {
          match: { sku: G(1), peer: '127.0.0.1' },
          action: { type, ...(type === 'delay-bind' ? { ms: 5 } : {}) },
        },
      ]);
      expect(r.ok).toBe(false);
      if (!r.ok)
        expect(r.errors[0]).toMatch(
          /before any KMS request is read, so it can only match peer, nth, ruleNth, probability and window/,
        );
    }
  });

  it('names the rule and the field of every problem', () => {
    const r = validateFaultRules({
      faults: [
        { name: 'a', action: { type: 'hresult', hresult: 'zz' } },
        { name: 'a', action: { type: 'count', count: -1 } },
        {
          action: { type: 'delay-response', ms: 'soon' },
          match: { nth: 0, probability: 2, window: { from: 'tomorrow' }, kmsid: G(1) },
        },
        { action: { type: 'tamper', what: 'crc' }, extra: 1 },
        {
          match: { application: 'linux', sku: 'No Such Product 3000', protocol: 7 },
          action: { type: 'wrong-cmid' },
        },
        'nope',
      ],
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual([
      'faults[0] ("a").action.hresult: not an HRESULT: zz',
      'faults[1] ("a").action.count: an integer 0..4294967295, got -1',
      'faults[2].action.ms: whole milliseconds 0..600000, got "soon"',
      'faults[2].match: unknown key "kmsid" (use application, kmsId, sku, cmid, protocol, peer, nth, ruleNth, probability, window)',
      'faults[2].match.nth: a number ≥ 1, a list of them, or { from, to, every }; got 0',
      'faults[2].match.probability: a number 0..1, got 2',
      'faults[2].match.window.from: bad duration "tomorrow" (use e.g. 30s, 120m, 4h, 7d)',
      'faults[3]: unknown key "extra" (use name, match, action)',
      'faults[3].action.what: "mac", "hmac" or "ciphertext", got "crc"',
      'faults[4].match.application: an application id GUID or windows, office2010, office2013, got "linux"',
      'faults[4].match.sku: a SKU GUID or a catalog product name, got "No Such Product 3000"',
      'faults[4].match.protocol: 4, 5, 6 or a list of them, got 7',
      'faults[5]: a rule is an object { name?, match?, action }, got "nope"',
    ]);
  });

  it('normalises names, aliases and product names', () => {
    const [r] = parseFaultRules([
      {
        match: { application: 'Office2013', sku: 'Windows 10 Enterprise', cmid: `{${G(5).toUpperCase()}}` },
        action: { type: 'hresult', hresult: 'C004F042' },
      },
    ]);
    expect(r).toEqual({
      name: 'hresult#0',
      match: {
        application: ['0ff1ce15-a989-479d-af46-f275c6370663'],
        sku: ['73111121-5638-40f6-bc11-f1d7b0d64300'],
        cmid: [G(5)],
      },
      action: { type: 'hresult', hresult: 0xc004f042 },
    });
    expect(() => parseFaultRules('x')).toThrow(/fault rules must be a list/);
  });
});
