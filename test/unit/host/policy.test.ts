/**
 * The host's decision for one request (host.ts handle(), policy.ts): refusals with their HRESULTs (spec
 * f.5, f.8), the default that activates unknown products, and what the event says (spec f.4, f.7).
 */
import { describe, expect, it } from 'vitest';
import { defaultCatalog, OFFICE2013_APP_ID, WINDOWS_APP_ID } from '../../../src/catalog/products.js';
import { HOUR } from '../../../src/host/clock.js';
import { createHostState, type HostState, handle, poolFor } from '../../../src/host/host.js';
import { createIdentity } from '../../../src/host/identity.js';
import {
  DEFAULT_POLICY,
  GENUINE_MAX_SKEW_MS,
  type HostPolicy,
  resolvePolicy,
} from '../../../src/host/policy.js';
import { SeededRandom } from '../../../src/host/random.js';
import { HResult } from '../../../src/kms/hresult.js';
import type { KmsRequestBody } from '../../../src/kms/messages.js';
import { fileTimeFromMs } from '../../../src/wire/filetime.js';
import { NIL_GUID } from '../../../src/wire/guid.js';

const catalog = defaultCatalog();
const NOW = Date.UTC(2026, 0, 1);
const WIN10 = {
  kmsId: '58e2134f-8e11-4d17-9cb2-91069c151148',
  skuId: '2de67392-b7a7-462a-b1ca-108dd189f588',
};
const SERVER2019 = {
  kmsId: '8449b1fb-f0ea-497a-99ab-66ca96e9a0f5',
  skuId: 'de32eafd-aaee-4662-9444-c1befb41bde2',
};
const OFFICE2016_KMS = '85b5f61b-320b-4be3-814a-b76b2bfafc82';
const RETAIL_KMS = 'e1c51358-fe3e-4203-a4a2-3b6b20c9734e'; // Windows 10/11 (Retail)
const PREVIEW_KMS = '5f94a0bb-d5a0-4081-a685-5819418b2fe0'; // Windows Preview
const UNKNOWN = 'deadbeef-0000-4000-8000-0000000000aa';

function state(policy: Partial<HostPolicy> = {}): HostState {
  return createHostState(
    catalog,
    resolvePolicy(policy),
    createIdentity(catalog, new SeededRandom('policy'), NOW),
  );
}

let n = 0;
function req(o: Partial<KmsRequestBody> = {}): KmsRequestBody {
  n += 1;
  return {
    minorVersion: 0,
    majorVersion: 6,
    vmInfo: 1,
    licenseStatus: 2,
    bindingExpiration: 43_200,
    applicationId: WINDOWS_APP_ID,
    skuId: WIN10.skuId,
    kmsId: WIN10.kmsId,
    cmid: `11111111-2222-4333-8444-${n.toString(16).padStart(12, '0')}`,
    requiredClientCount: 25,
    clientTime: fileTimeFromMs(NOW),
    previousCmid: NIL_GUID,
    workstation: 'pc-01.example.test',
    ...o,
  };
}

const meta = (now = NOW) => ({
  now,
  peer: '127.0.0.1:50000',
  connectionId: 7,
  protocol: 6 as const,
  ndr: 'ndr64' as const,
});

describe('policy refusals (spec f.5)', () => {
  it('default policy activates unknown KMS ids and unknown application ids (vlmcsd -K0, genuine hosts)', () => {
    const s = state();
    const a = handle(s, req({ kmsId: UNKNOWN }), meta());
    expect(a.hresult).toBe(HResult.S_OK);
    expect(a.body?.currentCount).toBe(1);
    const b = handle(s, req({ applicationId: UNKNOWN, kmsId: UNKNOWN, requiredClientCount: 1 }), meta());
    expect(b.hresult).toBe(HResult.S_OK);
    // An unknown application counts in the Windows pool (spec f.3).
    expect(b.body?.currentCount).toBe(2);
    expect(b.event.decision).toBe('activated');
    expect(poolFor(s, UNKNOWN).applicationId).toBe(WINDOWS_APP_ID);
    // Retail, preview and mismatched products too.
    for (const o of [{ kmsId: RETAIL_KMS }, { kmsId: PREVIEW_KMS }, { kmsId: OFFICE2016_KMS }]) {
      expect(handle(s, req(o), meta()).hresult).toBe(HResult.S_OK);
    }
    expect(DEFAULT_POLICY.maxClockSkewMs).toBeNull();
  });

  it('refuseUnknown: unknown KMS id or application id → 0xC004F042', () => {
    const s = state({ refuseUnknown: true });
    const a = handle(s, req({ kmsId: UNKNOWN }), meta());
    expect(a.hresult).toBe(0xc004f042);
    expect(a.body).toBeNull();
    expect(a.event.reason).toMatch(/unknown KMS id/);
    const b = handle(s, req({ applicationId: UNKNOWN }), meta());
    expect(b.hresult).toBe(0xc004f042);
    expect(b.event.reason).toMatch(/unknown application id/);
    expect(handle(s, req(), meta()).hresult).toBe(HResult.S_OK);
  });

  it('refuseRetail: retail and preview product groups → 0xC004F042', () => {
    const s = state({ refuseRetail: true });
    expect(handle(s, req({ kmsId: RETAIL_KMS }), meta()).hresult).toBe(0xc004f042);
    expect(handle(s, req({ kmsId: PREVIEW_KMS }), meta()).hresult).toBe(0xc004f042);
    expect(handle(s, req(), meta()).hresult).toBe(HResult.S_OK);
    // An unknown KMS id is not "retail": that is refuseUnknown's business.
    expect(handle(s, req({ kmsId: UNKNOWN }), meta()).hresult).toBe(HResult.S_OK);
  });

  it('refuseMismatch: application id not matching the KMS id → 0xC004F042', () => {
    const s = state({ refuseMismatch: true });
    expect(handle(s, req({ kmsId: OFFICE2016_KMS }), meta()).hresult).toBe(0xc004f042);
    expect(handle(s, req({ applicationId: OFFICE2013_APP_ID }), meta()).hresult).toBe(0xc004f042);
    expect(handle(s, req({ applicationId: OFFICE2013_APP_ID, kmsId: OFFICE2016_KMS }), meta()).hresult).toBe(
      HResult.S_OK,
    );
  });

  it('maxClockSkew: |client time − host time| above the limit → 0xC004F06C, the limit itself passes', () => {
    const s = state({ maxClockSkewMs: GENUINE_MAX_SKEW_MS });
    expect(GENUINE_MAX_SKEW_MS).toBe(4 * HOUR);
    for (const d of [0, 4 * HOUR, -4 * HOUR]) {
      expect(handle(s, req({ clientTime: fileTimeFromMs(NOW + d) }), meta()).hresult).toBe(HResult.S_OK);
    }
    for (const d of [4 * HOUR + 1, -(4 * HOUR + 1), 365 * 24 * HOUR]) {
      const r = handle(s, req({ clientTime: fileTimeFromMs(NOW + d) }), meta());
      expect(r.hresult).toBe(0xc004f06c);
      expect(r.event.reason).toMatch(/clock/);
    }
  });

  it('without maxClockSkew any client time is accepted', () => {
    const s = state();
    expect(handle(s, req({ clientTime: fileTimeFromMs(0) }), meta()).hresult).toBe(HResult.S_OK);
  });

  it('RequiredClientCount 1001 → 0x8007000D (1000 is fine)', () => {
    const s = state();
    const r = handle(s, req({ requiredClientCount: 1001 }), meta());
    expect(r.hresult).toBe(0x8007000d);
    expect(r.event.reason).toMatch(/1001/);
    expect(handle(s, req({ requiredClientCount: 1000 }), meta()).hresult).toBe(HResult.S_OK);
  });

  it('refused requests do not touch the pool', () => {
    const s = state({ refuseUnknown: true });
    handle(s, req(), meta());
    const before = poolFor(s, WINDOWS_APP_ID).list(NOW);
    const r = handle(s, req({ kmsId: UNKNOWN }), meta());
    expect(r.change).toEqual({ upsert: [], remove: [] });
    expect(poolFor(s, WINDOWS_APP_ID).list(NOW)).toEqual(before);
    expect(r.event.count).toBe(0);
    expect(r.event.epid).toBe('');
  });

  it('rejects intervals that are not whole minutes ≥ 1', () => {
    expect(() => resolvePolicy({ activationInterval: 0 })).toThrow(RangeError);
    expect(() => resolvePolicy({ renewalInterval: 1.5 })).toThrow(RangeError);
    expect(resolvePolicy({ activationInterval: 60 }).activationInterval).toBe(60);
  });
});

describe('the answer and its event (spec f.3, f.4, f.7)', () => {
  it('never refuses for a low count: answers, and the event says count-insufficient', () => {
    const s = state();
    const r = handle(s, req({ requiredClientCount: 25 }), meta());
    expect(r.hresult).toBe(HResult.S_OK);
    expect(r.body).toMatchObject({ currentCount: 1, activationInterval: 120, renewalInterval: 10080 });
    expect(r.event).toMatchObject({
      type: 'activation',
      hresult: 0,
      count: 1,
      requiredCount: 25,
      wouldActivate: false,
      decision: 'count-insufficient',
      vm: true,
      licenseStatus: 2,
      bindingExpiration: 43_200,
      workstation: 'pc-01.example.test',
      protocol: 6,
      ndr: 'ndr64',
      connectionId: 7,
      peer: '127.0.0.1:50000',
      productName: 'Windows 10/11 Pro',
      fault: null,
    });
    expect(r.event.reason).toMatch(/0xC004F038/);
    expect(r.event.epid).toBe(s.identity.epids['Windows']);
    expect(r.event.clientTime).toBe('2026-01-01T00:00:00.000Z');
  });

  it('says activated once the count reaches the client threshold (servers at 5, clients at 25; one pool)', () => {
    const s = state();
    const decisions: string[] = [];
    for (let i = 1; i <= 5; i++) {
      decisions.push(handle(s, req({ ...SERVER2019, requiredClientCount: 5 }), meta()).event.decision);
    }
    expect(decisions).toEqual([
      'count-insufficient',
      'count-insufficient',
      'count-insufficient',
      'count-insufficient',
      'activated',
    ]);
    // Windows clients and servers share the pool (spec f.1): a client now sees 6, still < 25.
    const c = handle(s, req({ requiredClientCount: 25 }), meta());
    expect(c.event.count).toBe(6);
    expect(c.event.wouldActivate).toBe(false);
    for (let i = 7; i <= 25; i++) handle(s, req(), meta());
    const last = handle(s, req(), meta());
    expect(last.event.count).toBe(26);
    expect(last.event).toMatchObject({ wouldActivate: true, decision: 'activated' });
  });

  it('says refused (wouldActivate false, count 0) for a refusal, and counts results in the totals', () => {
    const s = state({ refuseUnknown: true });
    const r = handle(s, req({ kmsId: UNKNOWN, requiredClientCount: 1 }), meta());
    expect(r.event).toMatchObject({
      decision: 'refused',
      wouldActivate: false,
      count: 0,
      hresult: 0xc004f042,
    });
    handle(s, req({ requiredClientCount: 1 }), meta());
    handle(s, req(), meta());
    expect(s.totals).toEqual({
      requests: 3,
      byResult: { refused: 1, activated: 1, 'count-insufficient': 1 },
    });
    expect(s.seq).toBe(3);
  });

  it('an imposed decision forces an HRESULT (pool untouched) or a count (the client still counted)', () => {
    const s = state();
    const a = handle(s, req(), meta(), { label: 'down', hresult: 0xc004f039 });
    expect(a.hresult).toBe(0xc004f039);
    expect(a.body).toBeNull();
    expect(a.change).toEqual({ upsert: [], remove: [] });
    expect(a.event).toMatchObject({ decision: 'refused', fault: 'down', reason: 'down', count: 0 });
    const b = handle(s, req({ requiredClientCount: 25 }), meta(), { label: 'charged', count: 50 });
    expect(b.body?.currentCount).toBe(50);
    expect(b.change.upsert).toHaveLength(1);
    expect(b.event).toMatchObject({ decision: 'activated', fault: 'charged' });
    // An imposed S_OK answers past a policy refusal, and counts the client.
    const strict = state({ refuseUnknown: true });
    const c = handle(strict, req({ kmsId: UNKNOWN }), meta(), { label: 'ok', hresult: 0, reason: 'x' });
    expect(c.hresult).toBe(HResult.S_OK);
    expect(c.event).toMatchObject({ decision: 'count-insufficient', fault: 'ok', count: 1 });
  });

  it('records what the store must persist: the upsert, and expired CMIDs as removals', () => {
    const s = state();
    const first = handle(s, req({ cmid: 'aaaaaaaa-0000-4000-8000-000000000001' }), meta());
    expect(first.change.upsert).toHaveLength(1);
    expect(first.change.upsert[0]).toMatchObject({
      applicationId: WINDOWS_APP_ID,
      firstSeen: NOW,
      lastSeen: NOW,
    });
    const later = NOW + 30 * 24 * HOUR + 1;
    const second = handle(s, req({ clientTime: fileTimeFromMs(later) }), meta(later));
    expect(second.change.remove).toEqual([
      { applicationId: WINDOWS_APP_ID, cmid: 'aaaaaaaa-0000-4000-8000-000000000001' },
    ]);
    expect(second.body?.currentCount).toBe(1);
  });

  it('dedupePreviousCmid drops the previous CMID from the pool (optional reading of spec f.3)', () => {
    const s = state({ dedupePreviousCmid: true });
    const old = 'bbbbbbbb-0000-4000-8000-000000000001';
    handle(s, req({ cmid: old }), meta());
    const r = handle(s, req({ previousCmid: old }), meta());
    expect(r.body?.currentCount).toBe(1);
    expect(r.change.remove).toEqual([{ applicationId: WINDOWS_APP_ID, cmid: old }]);
    const plain = state();
    handle(plain, req({ cmid: old }), meta());
    expect(handle(plain, req({ previousCmid: old }), meta()).body?.currentCount).toBe(2);
  });
});
