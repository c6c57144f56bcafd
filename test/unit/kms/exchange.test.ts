import { describe, expect, it } from 'vitest';
import { defaultCatalog } from '../../../src/catalog/products.js';
import { tamperStub } from '../../../src/harness/tamper.js';
import { ManualClock } from '../../../src/host/clock.js';
import { SeededRandom } from '../../../src/host/random.js';
import { type CallShaping, KmsService } from '../../../src/host/service.js';
import { decodeRequest } from '../../../src/kms/envelope.js';
import { ClientExchange, encodeRequest, prepareRequest, verifyResponse } from '../../../src/kms/exchange.js';
import { HResult } from '../../../src/kms/hresult.js';
import type { KmsRequestBody, KmsVersion, NdrSyntax } from '../../../src/kms/messages.js';
import { unwrapRequestStub, unwrapResponseStub, wrapErrorStub } from '../../../src/kms/stub.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { isProtocolError } from '../../../src/wire/errors.js';
import { fileTimeFromMs } from '../../../src/wire/filetime.js';
import { NIL_GUID } from '../../../src/wire/guid.js';
import { fromHex, hex } from '../../../src/wire/utf16.js';
import { kmsVectors } from '../../helpers/fixtures.js';

const T0 = Date.UTC(2026, 2, 1, 8, 30);

/** What the host is made to do wrong: an imposed shaping (the fault seam), and/or a damaged stub. */
interface Fault {
  shaping?: CallShaping;
  tamper?: 'mac' | 'ciphertext';
}

function setup(fault: Fault = {}) {
  const clock = new ManualClock(T0);
  const service = new KmsService({
    clock,
    random: new SeededRandom('exchange-test'),
    store: new MemoryStore(),
  });
  const random = new SeededRandom('client');
  const { shaping, tamper } = fault;
  const call = (stub: Uint8Array, ndr: NdrSyntax = 'ndr32') => {
    const out = service.handleCall(
      stub,
      ndr,
      { peer: 't', connectionId: 1 },
      shaping ? () => shaping : undefined,
    );
    if (out.kind !== 'response') throw new Error('fault');
    // The tamper fault's damage, as the harness applies it (src/harness/tamper.ts).
    return tamper && out.event ? tamperStub(out.stub, tamper, out.event.protocol, ndr) : out.stub;
  };
  return { clock, service, random, call, x: new ClientExchange({ checkEpid: true }) };
}

function body(version: KmsVersion, cmid = 'c0ffee00-1234-4abc-8def-0123456789ab'): KmsRequestBody {
  const sku = defaultCatalog().findSku('Windows Server 2022 Datacenter');
  return {
    minorVersion: 0,
    majorVersion: version,
    vmInfo: 1,
    licenseStatus: 0,
    bindingExpiration: 0,
    applicationId: sku.applicationId,
    skuId: sku.id,
    kmsId: sku.kmsId,
    cmid,
    requiredClientCount: 5,
    clientTime: 0n,
    previousCmid: NIL_GUID,
    workstation: 'WIN-ABCDEFGHIJK',
  };
}

/** The ProtocolError code `f` throws. */
function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isProtocolError(e)) return e.code;
    throw e;
  }
  return 'none';
}

describe.each([4, 5, 6] as const)('ClientExchange V%i', (v) => {
  it('sends a request src/kms decodes to the machine, with the patched fields', () => {
    const { x, random } = setup();
    const t = prepareRequest(body(v));
    for (const [now, status, minutes] of [
      [T0, 2, 43_200],
      [T0 + 7 * 86_400_000, 1, 259_000],
    ] as const) {
      for (const ndr of ['ndr32', 'ndr64'] as const) {
        x.encode(t, fileTimeFromMs(now), random, status, minutes);
        const d = decodeRequest(unwrapRequestStub(x.requestStub(ndr), ndr));
        expect(d.version).toBe(v);
        expect(d.integrityOk).toBe(true);
        expect(d.body).toEqual({
          ...body(v),
          licenseStatus: status,
          bindingExpiration: minutes,
          clientTime: fileTimeFromMs(now),
        });
      }
    }
  });

  it('a reused template gives the bytes and context of a fresh encodeRequest', () => {
    const { x } = setup();
    const b = { ...body(v), clientTime: fileTimeFromMs(T0), licenseStatus: 2, bindingExpiration: 43_200 };
    const t = prepareRequest(b);
    x.encode(t, fileTimeFromMs(T0 + 86_400_000), new SeededRandom('other'), 1, 5);
    const m = x.encode(t, b.clientTime, new SeededRandom('iv'), 2, 43_200);
    const a = encodeRequest(b, { random: (n) => new SeededRandom('iv').bytes(n) });
    expect(m).toEqual(a.message);
    expect(x.context()).toEqual(a.context);
  });

  it('encodes the spec vector request byte for byte and verifies its response (spec c.7)', () => {
    const m = kmsVectors().messages[`v${v}`]!;
    const request = fromHex(String(m[v === 4 ? 'request_252' : 'request_260']));
    const { body: b } = decodeRequest(request);
    const x = new ClientExchange({ checkEpid: true });
    // The vector's clear-text IV (c.4) as the injected random; V4 draws none.
    const iv = { bytes: (n: number) => request.slice(4, 4 + n) };
    expect(hex(x.encode(prepareRequest(b), b.clientTime, iv))).toBe(hex(request));
    const r = x.verify(fromHex(String(m[v === 4 ? 'response_160' : 'response'])));
    expect([r.currentCount, r.activationInterval, r.renewalInterval]).toEqual([50, 120, 10_080]);
    expect(r.epid()).toBe(kmsVectors().messages['common']!['epid']);
    expect(r.hmacSlot).toBe(v === 6 ? 0 : null);
  });

  it.each(['ndr32', 'ndr64'] as const)(
    'accepts the host answer (%s) and reads count, intervals, ePID',
    (ndr) => {
      const { x, random, call } = setup();
      x.encode(prepareRequest(body(v)), fileTimeFromMs(T0), random, 2, 43_200);
      const stub = call(x.requestStub(ndr), ndr);
      const r = x.verifyStub(stub, ndr);
      expect(r.answered).toBe(true);
      expect([r.hresult, r.currentCount, r.activationInterval, r.renewalInterval]).toEqual([
        0, 1, 120, 10_080,
      ]);
      expect(r.epid()).toMatch(/^\d{5}-\d{5}-/);
      expect(r.hwid()?.length ?? null).toBe(v === 6 ? 8 : null);
      expect(r.hmacSlot).toBe(v === 6 ? 0 : null);
      // The value wrapper agrees.
      const w = verifyResponse(unwrapResponseStub(stub, ndr).message!, x.context());
      expect(w.body.currentCount).toBe(1);
      expect(w.body.epid).toBe(r.epid());
    },
  );

  it('rejects every single-bit flip of the message with a ProtocolError', () => {
    const { x, random, call } = setup();
    x.encode(prepareRequest(body(v)), fileTimeFromMs(T0), random, 2, 43_200);
    const msg = unwrapResponseStub(call(x.requestStub('ndr32')), 'ndr32').message!.slice();
    expect(codeOf(() => x.verify(msg))).toBe('none');
    const codes = new Set<string>();
    for (let i = 0; i < msg.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = msg.slice();
        bad[i]! ^= bit;
        const c = codeOf(() => x.verify(bad));
        expect(c, `byte ${i} bit ${bit}`).not.toBe('none');
        codes.add(c);
      }
    }
    expect(codes.has(v === 4 ? 'BAD_MAC' : 'BAD_PADDING') || codes.has('BAD_MAC')).toBe(true);
    expect(codes.has('BAD_ECHO')).toBe(true);
  });

  it.each([
    [
      'tamper ciphertext',
      { tamper: 'ciphertext' },
      v === 4 ? /^BAD_MAC$/ : /^BAD_(PADDING|MAC|EPID|ECHO|MESSAGE)$/,
    ],
    ['tamper mac', { tamper: 'mac' }, /^BAD_MAC$/],
    ['wrong CMID', { shaping: { label: 'x', cmid: 'c0ffee00-1234-4abc-8def-0123456789aa' } }, /^BAD_ECHO$/],
    // V6 keys its HMAC with the echoed time (spec c.6, d.5), and integrity is checked before echoes.
    [
      'wrong time',
      { shaping: { label: 'x', clientTime: 10_000_000n } },
      v === 6 ? /^BAD_MAC$/ : /^BAD_ECHO$/,
    ],
  ] as [string, Fault, RegExp][])('rejects the answer of a host with a %s fault', (_, fault, re) => {
    for (const ndr of ['ndr32', 'ndr64'] as const) {
      const { x, random, call } = setup(fault);
      x.encode(prepareRequest(body(v)), fileTimeFromMs(T0), random, 2, 43_200);
      const stub = call(x.requestStub(ndr), ndr);
      expect(
        codeOf(() => x.verifyStub(stub, ndr)),
        ndr,
      ).toMatch(re);
    }
  });

  it('reads an hresult fault as the host HRESULT, not a verification failure', () => {
    const { x, random, call } = setup({ shaping: { label: 'x', hresult: HResult.KMS_ID_MISMATCH } });
    x.encode(prepareRequest(body(v)), fileTimeFromMs(T0), random, 2, 43_200);
    const r = x.verifyStub(call(x.requestStub('ndr32')), 'ndr32');
    expect([r.answered, r.hresult, r.currentCount]).toEqual([false, HResult.KMS_ID_MISMATCH >>> 0, 0]);
  });

  it('rejects an answer to another request: other time, other CMID, truncated or extended', () => {
    const { x, random, call } = setup();
    const t = prepareRequest(body(v));
    x.encode(t, fileTimeFromMs(T0), random);
    const first = unwrapResponseStub(call(x.requestStub('ndr32')), 'ndr32').message!.slice();
    x.encode(t, fileTimeFromMs(T0 + 60_000), random);
    expect(codeOf(() => x.verify(first))).toMatch(v === 4 ? /BAD_ECHO/ : /BAD_(ECHO|MAC)/);
    const other = prepareRequest(body(v, 'c0ffee00-1234-4abc-8def-0123456789ac'));
    x.encode(other, fileTimeFromMs(T0), random);
    expect(codeOf(() => x.verify(first))).toMatch(v === 4 ? /BAD_ECHO/ : /BAD_(ECHO|MAC)/);
    if (v === 4) {
      // V4 has nothing else to fail: the echo names both CMIDs.
      expect(() => x.verify(first)).toThrow(
        'response echoes CMID c0ffee00-1234-4abc-8def-0123456789ab, request had c0ffee00-1234-4abc-8def-0123456789ac',
      );
    }
    x.encode(t, fileTimeFromMs(T0), random);
    if (v === 4) {
      // Same request again: the old answer verifies (V4 has no nonce) unless its length changes.
      expect(codeOf(() => x.verify(first))).toBe('none');
    }
    expect(codeOf(() => x.verify(first.subarray(0, first.length - 16)))).not.toBe('none');
    const longer = new Uint8Array(first.length + 16);
    longer.set(first);
    expect(codeOf(() => x.verify(longer))).toMatch(/BAD_(MESSAGE|PADDING|MAC|ECHO)/);
  });
});

describe('ClientExchange stub checks (spec b.2, b.3)', () => {
  it('reads an error stub as the host HRESULT and rejects malformed stubs', () => {
    const { x, random } = setup();
    x.encode(prepareRequest(body(6)), fileTimeFromMs(T0), random);
    const r = x.verifyStub(wrapErrorStub(0xc004f042, 'ndr32'), 'ndr32');
    expect([r.answered, r.hresult]).toEqual([false, 0xc004f042]);
    expect(x.verifyStub(wrapErrorStub(0xc004f042, 'ndr64'), 'ndr64').hresult).toBe(0xc004f042);
    expect(codeOf(() => x.verifyStub(new Uint8Array(4), 'ndr32'))).toBe('SHORT_INPUT');
    expect(codeOf(() => x.verifyStub(new Uint8Array(12), 'ndr32'))).toBe('BAD_STUB');
    expect(codeOf(() => x.verifyStub(new Uint8Array(16), 'ndr32'))).toBe('BAD_STUB');
    const lying = new Uint8Array(40);
    new DataView(lying.buffer).setUint32(0, 200, true);
    new DataView(lying.buffer).setUint32(4, 0x20000, true);
    new DataView(lying.buffer).setUint32(8, 200, true);
    expect(codeOf(() => x.verifyStub(lying, 'ndr32'))).toMatch(/SHORT_INPUT|BAD_STUB/);
  });

  it('refuses to verify before a request was encoded or expected', () => {
    expect(() => new ClientExchange().verify(new Uint8Array(8))).toThrow(/before encode/);
  });
});
