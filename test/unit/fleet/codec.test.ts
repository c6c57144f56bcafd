import { describe, expect, it } from 'vitest';
import { defaultCatalog } from '../../../src/catalog/products.js';
import { FleetCodec, prepareRequest } from '../../../src/client/fleet-codec.js';
import { tamperStub } from '../../../src/harness/tamper.js';
import { ManualClock } from '../../../src/host/clock.js';
import { SeededRandom } from '../../../src/host/random.js';
import { type CallShaping, KmsService } from '../../../src/host/service.js';
import { decodeRequest } from '../../../src/kms/envelope.js';
import { HResult } from '../../../src/kms/hresult.js';
import type { KmsRequestBody, KmsVersion } from '../../../src/kms/messages.js';
import { unwrapRequestStub } from '../../../src/kms/stub.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { fileTimeFromMs } from '../../../src/wire/filetime.js';
import { NIL_GUID } from '../../../src/wire/guid.js';

const T0 = Date.UTC(2026, 2, 1, 8, 30);

/** What the host is made to do wrong: an imposed shaping, and/or a damaged stub. */
interface Fault {
  shaping?: CallShaping;
  tamper?: 'mac' | 'ciphertext';
}

function setup(fault: Fault | null = null) {
  const clock = new ManualClock(T0);
  const service = new KmsService({ clock, random: new SeededRandom('codec-test'), store: new MemoryStore() });
  const r = new SeededRandom('client');
  const codec = new FleetCodec((n) => r.bytes(n));
  const call = (stub: Uint8Array) => {
    const shaping = fault?.shaping;
    const out = service.handleCall(
      stub,
      'ndr32',
      { peer: 't', connectionId: 1 },
      shaping ? () => shaping : undefined,
    );
    if (out.kind !== 'response') throw new Error('fault');
    const tamper = fault?.tamper;
    return tamper && out.event ? tamperStub(out.stub, tamper, out.event.protocol, 'ndr32') : out.stub;
  };
  return { clock, service, codec, call };
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

describe.each([4, 5, 6] as const)('FleetCodec V%i', (v) => {
  it('sends a request src/kms decodes to the machine, with the patched fields', () => {
    const { codec } = setup();
    const t = prepareRequest(body(v));
    for (const [now, status, minutes] of [
      [T0, 2, 43_200],
      [T0 + 7 * 86_400_000, 1, 259_000],
    ] as const) {
      const stub = codec.encode(t, now, status, minutes);
      const d = decodeRequest(unwrapRequestStub(stub, 'ndr32'));
      expect(d.version).toBe(v);
      expect(d.integrityOk).toBe(true);
      expect(d.body).toEqual({
        ...body(v),
        licenseStatus: status,
        bindingExpiration: minutes,
        clientTime: fileTimeFromMs(now),
      });
    }
  });

  it('accepts the host answer and reads count and intervals', () => {
    const { codec, call } = setup();
    const t = prepareRequest(body(v));
    const o = codec.verify(call(codec.encode(t, T0, 2, 43_200)));
    expect(o).toEqual({
      count: 1,
      activationInterval: 120,
      renewalInterval: 10_080,
      hresult: 0,
      error: null,
    });
    expect(codec.firstEpid).toMatch(/^\d{5}-\d{5}-/);
  });

  it.each([
    [
      'ciphertext',
      { tamper: 'ciphertext' as const },
      v === 4 ? /BAD_MAC/ : /BAD_(PADDING|MAC|EPID|ECHO|MESSAGE)/,
    ],
    ['mac', { tamper: 'mac' as const }, /BAD_MAC/],
    ['wrong CMID', { shaping: { label: 'x', cmid: 'c0ffee00-1234-4abc-8def-0123456789aa' } }, /BAD_ECHO/],
    ['wrong time', { shaping: { label: 'x', clientTime: 10_000_000n } }, /BAD_ECHO/],
  ])('rejects an answer with a %s fault', (_, fault: Fault, re) => {
    const { codec, call } = setup(fault);
    const o = codec.verify(call(codec.encode(prepareRequest(body(v)), T0, 2, 43_200)));
    expect(o.count).toBeNull();
    expect(o.error).toMatch(re);
  });

  it('reports an error stub as the host HRESULT', () => {
    const { codec, call } = setup({ shaping: { label: 'x', hresult: HResult.KMS_ID_MISMATCH } });
    const o = codec.verify(call(codec.encode(prepareRequest(body(v)), T0, 2, 43_200)));
    expect(o).toEqual({
      count: null,
      activationInterval: 0,
      renewalInterval: 0,
      hresult: HResult.KMS_ID_MISMATCH,
      error: null,
    });
  });

  it('rejects an answer to another request (a response replayed to a later request)', () => {
    const { codec, call } = setup();
    const t = prepareRequest(body(v));
    const first = call(codec.encode(t, T0, 2, 43_200));
    codec.encode(t, T0 + 60_000, 2, 43_199);
    expect(codec.verify(first).error).toMatch(/BAD_(ECHO|MAC)/);
  });
});

describe('FleetCodec stub checks', () => {
  it('rejects malformed stubs', () => {
    const { codec } = setup();
    codec.encode(prepareRequest(body(6)), T0, 2, 1);
    expect(codec.verify(new Uint8Array(4)).error).toMatch(/BAD_STUB/);
    expect(codec.verify(Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)).error).toMatch(
      /NULL response pointer/,
    );
    const lying = new Uint8Array(40);
    new DataView(lying.buffer).setUint32(0, 200, true);
    new DataView(lying.buffer).setUint32(4, 0x20000, true);
    expect(codec.verify(lying).error).toMatch(/BAD_STUB/);
  });
});
