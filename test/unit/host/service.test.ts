/** KmsService.handleCall: NDR stub in, stub (or RPC fault status) out (spec b, c.0, f.5). */
import { describe, expect, it } from 'vitest';
import { DAY, ManualClock } from '../../../src/host/clock.js';
import type { ActivationEvent } from '../../../src/host/events.js';
import { SeededRandom } from '../../../src/host/random.js';
import { KmsService, NCA_S_FAULT_NDR } from '../../../src/host/service.js';
import { encodeRequest, verifyResponse } from '../../../src/kms/envelope.js';
import { HResult } from '../../../src/kms/hresult.js';
import type { KmsRequestBody, NdrSyntax } from '../../../src/kms/messages.js';
import { unwrapResponseStub, wrapRequestStub } from '../../../src/kms/stub.js';
import { openStore } from '../../../src/store/store.js';
import { requestBody } from '../../helpers/raw-client.js';

const T0 = Date.UTC(2026, 0, 1);
const conn = { peer: '127.0.0.1:1', connectionId: 1 };

function service(policy = {}) {
  return new KmsService({
    clock: new ManualClock(T0),
    random: new SeededRandom('svc'),
    store: openStore('memory'),
    policy,
  });
}

function call(svc: KmsService, body: KmsRequestBody, ndr: NdrSyntax = 'ndr32') {
  const rnd = new SeededRandom(body.cmid);
  const { message, context } = encodeRequest(body, { random: (n) => rnd.bytes(n) });
  const out = svc.handleCall(wrapRequestStub(message, ndr), ndr, conn);
  if (out.kind !== 'response') return { out, hresult: null, body: null };
  const { hresult, message: m } = unwrapResponseStub(out.stub, ndr);
  return { out, hresult, body: m ? verifyResponse(m, context).body : null };
}

describe('KmsService.handleCall', () => {
  it('answers V4, V5 and V6 in NDR32 and NDR64 with a verifiable response', () => {
    const svc = service();
    const r = new SeededRandom('bodies');
    let expected = 0;
    for (const version of [4, 5, 6] as const) {
      for (const ndr of ['ndr32', 'ndr64'] as const) {
        const res = call(svc, requestBody(r, { version }, T0), ndr);
        expected += 1;
        expect(res.hresult).toBe(HResult.S_OK);
        expect(res.body?.currentCount).toBe(expected);
        expect(res.body?.epid).toBe(svc.state.identity.epids['Windows']);
        expect(res.out.event?.protocol).toBe(version);
        expect(res.out.event?.ndr).toBe(ndr);
      }
    }
    expect(svc.store.historyCount()).toBe(6);
  });

  it('puts policy refusals in the error stub of a normal response (spec b.3)', () => {
    const r = new SeededRandom('refusals');
    const cases: [object, Partial<KmsRequestBody>, number][] = [
      [{ refuseUnknown: true }, { kmsId: 'deadbeef-0000-4000-8000-000000000001' }, 0xc004f042],
      [{ maxClockSkewMs: 4 * 3600_000 }, { clientTime: 0n }, 0xc004f06c],
      [{}, { requiredClientCount: 1001 }, 0x8007000d],
    ];
    for (const [policy, o, h] of cases) {
      for (const ndr of ['ndr32', 'ndr64'] as const) {
        const res = call(service(policy), requestBody(r, o, T0), ndr);
        expect(res.out.kind).toBe('response');
        expect(res.hresult).toBe(h);
        expect(res.body).toBeNull();
        expect(res.out.kind === 'response' && res.out.stub.length).toBe(ndr === 'ndr32' ? 12 : 20);
        expect(res.out.event?.decision).toBe('refused');
      }
    }
  });

  it('answers an unsupported version or a damaged message with 0x8007000D and no event (spec c.0, f.8)', () => {
    const svc = service();
    const body = requestBody(new SeededRandom(1), { version: 6 }, T0);
    const { message } = encodeRequest(body, { random: (n) => new SeededRandom(2).bytes(n) });
    const v7 = message.slice();
    v7[2] = 7;
    const bad = message.slice();
    bad[bad.length - 1]! ^= 0xff; // breaks the 04 04 04 04 pad
    for (const m of [v7, bad, message.slice(0, 100)]) {
      const out = svc.handleCall(wrapRequestStub(m, 'ndr32'), 'ndr32', conn);
      expect(out.kind).toBe('response');
      expect(out.event).toBeNull();
      expect(out.error).not.toBeNull();
      if (out.kind === 'response') expect(unwrapResponseStub(out.stub, 'ndr32').hresult).toBe(0x8007000d);
    }
    expect(svc.store.historyCount()).toBe(0);
  });

  it('answers a stub contradicting its own lengths with an RPC fault nca_s_fault_ndr (spec a.9)', () => {
    const svc = service();
    const stub = new Uint8Array(8 + 10);
    new DataView(stub.buffer).setUint32(0, 260, true);
    new DataView(stub.buffer).setUint32(4, 260, true);
    const out = svc.handleCall(stub, 'ndr32', conn);
    expect(out).toMatchObject({ kind: 'fault', status: NCA_S_FAULT_NDR });
    expect(NCA_S_FAULT_NDR).toBe(0x6f7);
  });

  it('emits one event per answered request and reset empties pools and history, keeping the identity', () => {
    const svc = service();
    const events: ActivationEvent[] = [];
    const off = svc.onEvent((e) => events.push(e));
    const r = new SeededRandom('ev');
    call(svc, requestBody(r, {}, T0));
    call(svc, requestBody(r, {}, T0));
    expect(events.map((e) => e.seq)).toEqual([1, 2]);
    expect(svc.countFor('55c92734-d682-4d71-983e-d6ec3f16059f')).toBe(2);
    const epids = { ...svc.state.identity.epids };
    svc.reset();
    expect(svc.countFor('55c92734-d682-4d71-983e-d6ec3f16059f')).toBe(0);
    expect(svc.store.historyCount()).toBe(0);
    expect(svc.status().requests.total).toBe(0);
    expect(svc.state.identity.epids).toEqual(epids);
    off();
    call(svc, requestBody(r, {}, T0));
    expect(events).toHaveLength(2);
  });

  it('status() shows per pool the count, capacity and which thresholds it meets; clients() the expiry', () => {
    const svc = service();
    const r = new SeededRandom('st');
    for (let i = 0; i < 5; i++) call(svc, requestBody(r, { product: 'server2019' }, T0));
    const st = svc.status();
    const win = st.pools.find((p) => p.name === 'Windows')!;
    // Only Windows Server machines (N_policy 5) are cached: the capacity in force is 2 × 5 (spec f.2).
    expect(win).toMatchObject({ count: 5, capacity: 10, minCapacity: 10, maxCapacity: 50 });
    expect(win.thresholds).toEqual([
      { requiredCount: 5, met: true },
      { requiredCount: 25, met: false },
    ]);
    expect(st.pools.filter((p) => p.name !== 'Windows').map((p) => [p.count, p.capacity])).toEqual([
      [0, 10],
      [0, 10],
    ]);
    expect(st.clock).toBe('manual');
    expect(st.hwid).toMatch(/^[0-9A-F]{16}$/);
    const clients = svc.clients();
    expect(clients).toHaveLength(5);
    expect(clients[0]!.expires).toBe(new Date(T0 + 30 * DAY).toISOString());
    (svc.clock as ManualClock).advance(30 * DAY + 1);
    expect(svc.clients()).toEqual([]);
    expect(svc.status().pools[0]!.count).toBe(0);
  });
});
