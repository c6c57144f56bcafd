/**
 * The client rejects every damaged or wrong answer with a verification failure naming the check:
 * flipped bits in captured vlmcsd answers (V4 MAC, V6 HMAC and ciphertext), and answers re-encoded
 * with wrong fields (CMID, time stamp, version, call_id, context id, stub layout).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type ActivateOptions, activate } from '../../../src/client/client.js';
import { cbcDecrypt, cbcEncrypt } from '../../../src/crypto/cbc.js';
import { V6_SCHEDULE } from '../../../src/crypto/keys.js';
import { HResult } from '../../../src/kms/hresult.js';
import { PTYPE } from '../../../src/rpc/constants.js';
import { decodePdu } from '../../../src/rpc/decode.js';
import { encodePdu } from '../../../src/rpc/encode.js';
import { makeAlterContextResp } from '../../../src/rpc/pdu.js';
import { loadCapture } from '../../helpers/fixtures.js';
import { clientOptionsFromCapture } from './capture-client.js';
import { type FakeHost, type MiniHostOptions, miniHost, replayHost } from './fake-host.js';

let host: FakeHost | null = null;
afterEach(async () => {
  await host?.close();
  host = null;
});

/**
 * Offset of the KMS message in the first response PDU of a capture: header 24 + NDR32 head 12 (the
 * first request is always NDR32: ctx 0 after the alter_context, or an NDR32-only bind).
 */
const MESSAGE_OFFSET = 24 + 12;

async function replayWith(name: string, change: (message: Uint8Array) => void) {
  const cap = loadCapture(name);
  const responseIndex = cap.pdus
    .filter((p) => p.dir === 's2c')
    .findIndex((p) => p.rpc?.ptype === PTYPE.RESPONSE);
  host = await replayHost(cap, (pdu, _conn, index) => {
    if (index !== responseIndex) return pdu;
    const at = MESSAGE_OFFSET;
    const msgLen = pdu.length - at - 4; // HRESULT last, no pad (all message sizes are ≡ 0 mod 4)
    change(pdu.subarray(at, at + msgLen));
    return pdu;
  });
  const [r] = await activate(clientOptionsFromCapture(cap, host.port));
  return r!;
}

describe('flipped bits in captured answers', () => {
  it('unchanged, the captured answers verify (control)', async () => {
    for (const name of ['v4-win7-ndr32-only', 'v6-win10']) {
      const r = await replayWith(name, () => {});
      expect(r.error).toBeUndefined();
      await host!.close();
      host = null;
    }
  });

  it('V4: one bit of the MAC → BAD_MAC', async () => {
    const r = await replayWith('v4-win7-ndr32-only', (m) => {
      m[m.length - 1]! ^= 0x01;
    });
    expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_MAC' });
    expect(r.activated).toBe(false);
    expect(r.hresult).toBe(HResult.NO_KMS);
    expect(r.epid).toBeNull();
  });

  it('V4: one bit of the count (covered by the MAC) → BAD_MAC', async () => {
    const r = await replayWith('v4-win7-ndr32-only', (m) => {
      m[m.length - 16 - 12]! ^= 0x80; // CurrentCount, 12 bytes before the MAC
    });
    expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_MAC' });
  });

  it('V6: one bit of the HMAC (decrypted, flipped, re-encrypted) → BAD_MAC on the HMAC', async () => {
    const r = await replayWith('v6-win10', (m) => {
      const plain = cbcDecrypt(V6_SCHEDULE, new Uint8Array(16), m.subarray(4));
      const pad = plain[plain.length - 1]!;
      const hmacEnd = plain.length - pad;
      plain[hmacEnd - 1]! ^= 0x01;
      m.set(cbcEncrypt(V6_SCHEDULE, new Uint8Array(16), plain), 4);
    });
    expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_MAC', field: 'HMAC' });
  });

  it('V6: one bit of the ciphertext over RandomXoredIVs → BAD_MAC on the hash', async () => {
    // Plaintext (zero-IV view) with a 100-byte ePID: R 0-15, base 16-159, RandomXoredIVs 160-175,
    // Hash 176-207, … Flipping ciphertext block 10 garbles RandomXoredIVs and flips a Hash bit.
    const r = await replayWith('v6-win10', (m) => {
      m[4 + 160 + 3]! ^= 0x10;
    });
    expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_MAC', field: 'Hash' });
  });

  it('V6: one bit of the last ciphertext block → BAD_PADDING', async () => {
    const r = await replayWith('v6-win10', (m) => {
      m[m.length - 1]! ^= 0x01;
    });
    expect(r.error?.kind).toBe('verification');
    expect(r.error?.code).toBe('BAD_PADDING');
  });

  it('V5: the response IV no longer equal to the request IV → BAD_ECHO', async () => {
    const r = await replayWith('v5-win8', (m) => {
      m[4]! ^= 0x01;
    });
    expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_ECHO', field: 'IV' });
  });
});

const base = (port: number, protocol: 4 | 5 | 6): ActivateOptions => ({
  host: '127.0.0.1',
  port,
  product: 'Windows 10 Enterprise',
  protocol,
  cmid: '11111111-2222-4333-8444-555555555555',
  workstation: 'verify-test',
  timeoutMs: 5000,
  clientTime: new Date('2026-01-01T00:00:00Z'),
});

async function against(opts: MiniHostOptions, protocol: 4 | 5 | 6, extra: Partial<ActivateOptions> = {}) {
  host = await miniHost(opts);
  const [r] = await activate({ ...base(host.port, protocol), ...extra });
  await host.close();
  host = null;
  return r!;
}

describe('answers re-encoded with wrong fields (encodeResponse)', () => {
  for (const v of [4, 5, 6] as const) {
    it(`V${v}: a correct answer verifies; count below N_Policy is 0xC004F038, not a failure`, async () => {
      const ok = await against({}, v);
      expect(ok.error).toBeUndefined();
      expect(ok.activated).toBe(true);
      expect(ok.hwid).toBe(v === 6 ? '3A1C049600B60076' : null);
      const low = await against({ count: 24 }, v);
      expect(low.error).toBeUndefined();
      expect(low.activated).toBe(false);
      expect(low.hresult).toBe(0xc004f038);
      expect(low.hresultText).toMatch(/insufficient.*count 24, needed 25/);
    });

    it(`V${v}: wrong CMID echo → BAD_ECHO on ClientMachineId`, async () => {
      const r = await against({ body: (b) => ({ ...b, cmid: '99999999-2222-4333-8444-555555555555' }) }, v);
      expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_ECHO', field: 'ClientMachineId' });
    });

    it(`V${v}: wrong time echo → BAD_ECHO on ClientTime (V6: within one HMAC time slot)`, async () => {
      const r = await against({ body: (b) => ({ ...b, clientTime: b.clientTime + 1n }) }, v);
      expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_ECHO', field: 'ClientTime' });
    });

    it(`V${v}: wrong version inside the answer → BAD_ECHO on Version`, async () => {
      const r = await against({ body: (b) => ({ ...b, minorVersion: 1 }) }, v);
      expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_ECHO', field: 'Version' });
    });
  }

  it('V6: a time echo a day off keys the HMAC with another slot → BAD_MAC', async () => {
    const r = await against({ body: (b) => ({ ...b, clientTime: b.clientTime + 864_000_000_000n }) }, 6);
    expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_MAC', field: 'HMAC' });
  });

  it('V5: hash damaged by the host (tamper) → BAD_MAC; V6 HMAC tamper → BAD_MAC', async () => {
    expect((await against({ tamper: 'mac' }, 5)).error).toMatchObject({ code: 'BAD_MAC', field: 'Hash' });
    expect((await against({ tamper: 'mac' }, 6)).error).toMatchObject({ code: 'BAD_MAC', field: 'HMAC' });
  });

  it('an odd PIDSize → BAD_EPID (checked before the MAC)', async () => {
    const r = await against(
      {
        pdu: (b) => {
          const out = b.slice();
          out[24 + 12 + 4] = 0x63; // PIDSize 0x63 (odd) in the V4 NDR32 answer
          return out;
        },
      },
      4,
      { ndr64: false },
    );
    expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_EPID' });
  });

  for (const v of [4, 6] as const) {
    it(`V${v}: a well-framed but malformed ePID → BAD_EPID on KmsPID, accepted with checkEpid: false`, async () => {
      for (const epid of ['not an ePID', '03612-00206-556-123727-03-1033-17763.0000-3972018']) {
        const r = await against({ epid }, v);
        expect(r.error).toMatchObject({ kind: 'verification', code: 'BAD_EPID', field: 'KmsPID' });
        expect(r.error?.message).toMatch(/malformed/);
      }
      const loose = await against({ epid: 'lab host' }, v, { checkEpid: false });
      expect(loose.error).toBeUndefined();
      expect(loose.epid).toBe('lab host');
    });
  }

  it('call_id not echoed → BAD_ECHO on call_id; context id not echoed → BAD_ECHO on p_cont_id', async () => {
    const callId = await against(
      {
        pdu: (b) => {
          const out = b.slice();
          out[12]! ^= 0x40;
          return out;
        },
      },
      6,
    );
    expect(callId.error).toMatchObject({ kind: 'verification', code: 'BAD_ECHO', field: 'call_id' });
    const ctx = await against(
      {
        pdu: (b) => {
          const out = b.slice();
          out[20] = 7;
          return out;
        },
      },
      6,
    );
    expect(ctx.error).toMatchObject({ kind: 'verification', code: 'BAD_ECHO', field: 'p_cont_id' });
  });

  it('an alter_context_resp where a response belongs → UNEXPECTED_PDU; trailing stub bytes → BAD_STUB', async () => {
    const wrongType = await against(
      {
        pdu: (b) =>
          encodePdu(
            makeAlterContextResp(decodePdu(b).callId, 0x03, {
              maxXmitFrag: 5840,
              maxRecvFrag: 5840,
              assocGroupId: 1,
              secondaryAddress: '',
              results: [],
            }),
          ),
      },
      6,
    );
    expect(wrongType.error).toMatchObject({ kind: 'verification', code: 'UNEXPECTED_PDU', field: 'PTYPE' });
    const trailing = await against(
      {
        pdu: (b) => {
          const p = decodePdu(b);
          if (p.type !== PTYPE.RESPONSE) throw new Error('not a response');
          const stub = new Uint8Array(p.stub.length + 4);
          stub.set(p.stub);
          return encodePdu({ ...p, stub, allocHint: stub.length });
        },
      },
      6,
    );
    expect(trailing.error).toMatchObject({ kind: 'verification', code: 'BAD_STUB' });
  });

  it('an error HRESULT in the stub is a result with that HRESULT explained', async () => {
    const r = await against({ hresult: 0xc004f06c }, 6);
    expect(r.error).toBeUndefined();
    expect(r.hresult).toBe(0xc004f06c);
    expect(r.hresultText).toMatch(/clock/);
  });
});

describe('bind variants against a host that prefers NDR64', () => {
  it('--no-ndr64: NDR32 only, no alter_context; --no-multiplex: flags 0x03', async () => {
    host = await miniHost();
    const [r] = await activate({ ...base(host.port, 6), ndr64: false, multiplex: false, btfn: false });
    expect(r!.error).toBeUndefined();
    expect(r!.ndr).toBe('ndr32');
    const pdus = host.received[0]!;
    expect(pdus.map((p) => p[2])).toEqual([PTYPE.BIND, PTYPE.REQUEST]);
    expect(pdus[0]![3]).toBe(0x03);
    const bind = decodePdu(pdus[0]!);
    expect(bind.type === PTYPE.BIND && bind.contexts.length).toBe(1);
  });

  it('default: three contexts, flags 0x13, alter_context, NDR32 then NDR64', async () => {
    host = await miniHost();
    const results = await activate({ ...base(host.port, 6), requests: 2 });
    expect(results.map((r) => r.ndr)).toEqual(['ndr32', 'ndr64']);
    const pdus = host.received[0]!;
    expect(pdus.map((p) => p[2])).toEqual([PTYPE.BIND, PTYPE.ALTER_CONTEXT, PTYPE.REQUEST, PTYPE.REQUEST]);
    expect(pdus[0]![3]).toBe(0x13);
  });

  it('a host that accepts NDR32 in the bind gets no alter_context and NDR32 throughout', async () => {
    host = await miniHost({ ndr64: false });
    const results = await activate({ ...base(host.port, 6), requests: 2 });
    expect(results.map((r) => r.ndr)).toEqual(['ndr32', 'ndr32']);
    expect(host.received[0]!.map((p) => p[2])).toEqual([PTYPE.BIND, PTYPE.REQUEST, PTYPE.REQUEST]);
  });
});
