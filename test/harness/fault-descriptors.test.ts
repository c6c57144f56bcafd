/**
 * The fault actions as descriptors (src/harness/faults.ts): each acts at one interception point of the
 * seam (src/server/fault-seam.ts), its level follows from that point, and the docs list every one.
 * The behaviour of each action is pinned in fault-actions.test.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FaultEngine, type FaultRule, faultActions, parseFaultRules } from '../../src/harness/faults.js';
import { ManualClock } from '../../src/host/clock.js';
import type { CallInfo } from '../../src/host/service.js';
import type { KmsRequestBody } from '../../src/kms/messages.js';

const LEVEL = { accept: 'connection', bind: 'bind', result: 'call', stub: 'call', delivery: 'call' };
const T0 = Date.UTC(2026, 0, 1);
const REQ = {
  applicationId: '55c92734-d682-4d71-983e-d6ec3f16059f',
  kmsId: '11111111-1111-4111-8111-111111111111',
  skuId: '22222222-2222-4222-8222-222222222222',
  cmid: '33333333-3333-4333-8333-333333333333',
  clientTime: 133_485_408_000_000_000n,
} as KmsRequestBody;
const INFO: CallInfo = { peer: '127.0.0.1:5000', connectionId: 1, protocol: 6, ndr: 'ndr32' };

/** One action of each type: a new descriptor needs its sample here (the tests below check that). */
const SAMPLES: FaultRule['action'][] = [
  { type: 'hresult', hresult: '0xC004F039' },
  { type: 'count', count: 3 },
  { type: 'rpc-fault' },
  { type: 'tamper' },
  { type: 'wrong-cmid' },
  { type: 'wrong-time' },
  { type: 'delay-response', ms: 5 },
  { type: 'close-mid-response' },
  { type: 'delay-bind', ms: 5 },
  { type: 'close-after-bind' },
  { type: 'bind-nak' },
  { type: 'reject-contexts' },
  { type: 'refuse-connection' },
];

function engineWith(action: FaultRule['action']): FaultEngine {
  const e = new FaultEngine({ seed: 1, clock: new ManualClock(T0) });
  e.setRules([{ name: 'r', action }]);
  return e;
}

describe('fault action descriptors', () => {
  it('each action has a description, and its level follows from its interception point', () => {
    const actions = faultActions();
    expect(actions.map((a) => a.type)).toEqual(SAMPLES.map((a) => a.type));
    for (const a of actions) {
      expect(a.level, a.type).toBe(LEVEL[a.point]);
      expect(a.description.length, a.type).toBeGreaterThan(10);
    }
  });

  it('docs/harness.md lists every action with its level and point', () => {
    const doc = readFileSync(new URL('../../docs/harness.md', import.meta.url), 'utf8');
    for (const a of faultActions()) {
      const row = new RegExp(`^\\| ${a.level} · ${a.point} \\| [^|]*\`${a.type}\``, 'm');
      expect(doc, a.type).toMatch(row);
    }
  });

  it('an action changes the outcome at its own point only', () => {
    for (const a of faultActions()) {
      const e = engineWith(SAMPLES.find((x) => x.type === a.type)!);
      const refused = !e.accept(INFO.peer);
      const bind = e.bind({ peer: INFO.peer, connectionId: 1 });
      const call = e.call(REQ, INFO);
      expect(refused, a.type).toBe(a.point === 'accept');
      expect(bind !== null, a.type).toBe(a.point === 'bind');
      expect(call !== null, a.type).toBe(a.level === 'call');
      if (call === null) continue;
      const { label, reason, ...result } = call.result;
      expect({ label, reason }).toEqual({ label: 'r', reason: 'fault r' });
      expect(Object.keys(result).length > 0, a.type).toBe(a.point === 'result');
      expect(call.stub !== null, a.type).toBe(a.point === 'stub');
      const { name, ...delivery } = call.delivery;
      expect(name).toBe('r');
      expect(Object.keys(delivery).length > 0, a.type).toBe(a.point === 'delivery');
    }
  });

  it('the rule format is what it was: defaults filled in, HRESULTs as numbers, and a normalised rule parses to itself', () => {
    const rules = parseFaultRules(SAMPLES.map((action) => ({ action })));
    // The actions that existed before the descriptors, normalised as they always were.
    const pinned = [
      { type: 'hresult', hresult: 0xc004f039 },
      { type: 'count', count: 3 },
      { type: 'rpc-fault', status: 0x1c01000b },
      { type: 'tamper', what: 'mac' },
      { type: 'wrong-cmid' },
      { type: 'wrong-time' },
      { type: 'delay-response', ms: 5 },
      { type: 'close-mid-response' },
      { type: 'delay-bind', ms: 5 },
      { type: 'close-after-bind' },
      { type: 'bind-nak', reason: 0 },
      { type: 'reject-contexts' },
      { type: 'refuse-connection' },
    ];
    for (const want of pinned) expect(rules.find((r) => r.action.type === want.type)?.action).toEqual(want);
    expect(rules.map((r) => r.name)).toEqual(SAMPLES.map((a, i) => `${a.type}#${i}`));
    // What GET /faults returns can be POSTed back unchanged.
    expect(parseFaultRules(rules)).toEqual(rules);
    // An optional field given as null takes its default, as it always did.
    const nulls = parseFaultRules([
      { action: { type: 'tamper', what: null } },
      { action: { type: 'bind-nak', reason: null } },
    ] as unknown as FaultRule[]);
    expect(nulls.map((r) => r.action)).toEqual([
      { type: 'tamper', what: 'mac' },
      { type: 'bind-nak', reason: 0 },
    ]);
  });

  it('an engine without rules decides nothing and reports nothing (a cheap seam)', () => {
    const e = new FaultEngine({ seed: 1, clock: new ManualClock(T0) });
    const fired: unknown[] = [];
    e.onFault((f) => fired.push(f));
    expect(e.accept(INFO.peer)).toBe(true);
    expect(e.bind({ peer: INFO.peer, connectionId: 1 })).toBeNull();
    expect(e.call(REQ, INFO)).toBeNull();
    expect(fired).toEqual([]);
    // The global counters still run, so an `nth` rule set later counts from the start.
    e.setRules([{ name: 'second', match: { nth: 2 }, action: { type: 'wrong-cmid' } }]);
    expect(e.call(REQ, INFO)?.result.cmid).toBe('33333333-3333-4333-8333-3333333333cc');
  });
});
