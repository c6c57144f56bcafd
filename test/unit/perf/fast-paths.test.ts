/**
 * The hot-path rewrites of issue 7 ("Speed") against the straightforward code they replaced, kept here
 * as references (copied from before the change): same bytes, same values, same errors.
 */
import crypto from 'node:crypto';
import { fc, test } from '@fast-check/vitest';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import {
  cbcDecryptRegion,
  cbcEncryptRegion,
  decryptBlock,
  encryptBlock,
  expandKey,
  type KeySchedule,
} from '../../../src/crypto/aes.js';
import { cbcDecrypt, cbcDecryptInto, cbcEncrypt, pkcs7Pad } from '../../../src/crypto/cbc.js';
import { V4_SCHEDULE, V5_SCHEDULE, V6_SCHEDULE } from '../../../src/crypto/keys.js';
import { v4Mac } from '../../../src/crypto/v4-mac.js';
import { sha256, sha256Into, v6Hmac, v6HmacInto, v6HmacKey } from '../../../src/crypto/v6-hmac.js';
import { tamperStub } from '../../../src/harness/tamper.js';
import { SeededRandom } from '../../../src/host/random.js';
import {
  BASE_REQUEST_SIZE,
  decodeRequestBody,
  responseBodyLength,
  writeResponseBody,
  writeResponseBodyAt,
} from '../../../src/kms/body.js';
import {
  decodeRequest,
  encodeRequest,
  encodeResponse,
  encodeResponseStub,
} from '../../../src/kms/envelope.js';
import type { KmsResponseBody, NdrSyntax } from '../../../src/kms/messages.js';
import { REFERENT_ID, unwrapRequestStub, wrapRequestStub, wrapResponseStub } from '../../../src/kms/stub.js';
import { Association } from '../../../src/rpc/association.js';
import { DREP_LE, PFC, PTYPE } from '../../../src/rpc/constants.js';
import {
  decodeHeader,
  decodePdu,
  decodeRequestBody as decodeRpcRequestBody,
} from '../../../src/rpc/decode.js';
import { encodePdu } from '../../../src/rpc/encode.js';
import { makeResponse, type PduCommon } from '../../../src/rpc/pdu.js';
import { ProtocolError } from '../../../src/wire/errors.js';
import { fileTimeFromMs, fileTimeToIso } from '../../../src/wire/filetime.js';
import { guidFromBytes, guidToBytes, NIL_GUID } from '../../../src/wire/guid.js';
import { Reader } from '../../../src/wire/reader.js';
import { decodeUtf16z } from '../../../src/wire/utf16.js';
import { Writer } from '../../../src/wire/writer.js';
import { bindBytes, requestBytes } from '../../helpers/raw-client.js';

const runs = { numRuns: 300 };

/** What a call threw (its class and ProtocolError code / message), or its value. */
function outcome<T>(fn: () => T): { ok: T } | { err: string } {
  try {
    return { ok: fn() };
  } catch (e) {
    const err = e as Error;
    return { err: `${err.constructor.name}:${(e as ProtocolError).code ?? ''}:${err.message}` };
  }
}

// ---------------------------------------------------------------------------------------------------
// wire

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
function guidFromBytesRef(b: Uint8Array, at = 0): string {
  const h = (i: number) => HEX[b[at + i]!]!;
  // The original expression, operator for operator (undefined + undefined is NaN there).
  return (
    h(3) +
    h(2) +
    h(1) +
    h(0) +
    '-' +
    h(5) +
    h(4) +
    '-' +
    h(7) +
    h(6) +
    '-' +
    h(8) +
    h(9) +
    '-' +
    h(10) +
    h(11) +
    h(12) +
    h(13) +
    h(14) +
    h(15)
  );
}
const ORDER = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
function guidToBytesRef(g: string, out: Uint8Array = new Uint8Array(16), at = 0): Uint8Array {
  const hex = g.replace(/-/g, '');
  if (hex.length !== 32) throw new ProtocolError('BAD_VALUE', `not a GUID: ${JSON.stringify(g)}`);
  for (let i = 0; i < 16; i++) {
    const v = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    if (Number.isNaN(v)) throw new ProtocolError('BAD_VALUE', `not a GUID: ${JSON.stringify(g)}`);
    out[at + ORDER[i]!] = v;
  }
  return out;
}

describe('wire fast paths', () => {
  test.prop([fc.uint8Array({ minLength: 0, maxLength: 40 }), fc.integer({ min: -2, max: 40 })], runs)(
    'guidFromBytes = the concatenation it replaced, at any offset',
    (b, at) => {
      expect(guidFromBytes(b, at)).toBe(guidFromBytesRef(b, at));
    },
  );

  it('guidFromBytes at a fractional offset behaves as before', () => {
    const b = new Uint8Array(32).fill(7);
    expect(guidFromBytes(b, 1.5)).toBe(guidFromBytesRef(b, 1.5));
  });

  const guidLike = fc.oneof(
    fc.uuid().map((u) => u.toLowerCase()),
    fc.uuid().map((u) => u.toUpperCase()),
    fc.uuid().map((u) => `${u.slice(0, 8)}x${u.slice(9)}`),
    fc.uuid().map((u) => `${u.slice(0, 20)}g${u.slice(21)}`),
    fc.uuid().map((u) => `${u.slice(0, 20)} ${u.slice(21)}`),
    fc.uuid().map((u) => u.replace(/-/g, '')),
    fc.uuid().map((u) => `-${u.replace(/-/g, '')}---`),
    fc.string({ maxLength: 40 }),
  );
  test.prop([guidLike, fc.integer({ min: 0, max: 8 })], runs)(
    'guidToBytes = the regex/parseInt version: same bytes, same errors',
    (g, at) => {
      const a = new Uint8Array(24).fill(0xaa);
      const b = new Uint8Array(24).fill(0xaa);
      const ra = outcome(() => guidToBytes(g, a, at));
      const rb = outcome(() => guidToBytesRef(g, b, at));
      expect('err' in ra ? ra.err : 'ok').toBe('err' in rb ? rb.err : 'ok');
      expect(a).toEqual(b);
    },
  );

  const reference = new TextDecoder('utf-16le');
  function decodeUtf16zRef(b: Uint8Array, maxUnits = b.length >> 1): string {
    const units = Math.min(maxUnits, b.length >> 1);
    let n = 0;
    while (n < units && (b[2 * n] !== 0 || b[2 * n + 1] !== 0)) n++;
    return reference.decode(b.subarray(0, 2 * n));
  }
  const unit = fc.oneof(
    fc.integer({ min: 0x20, max: 0x7e }),
    fc.integer({ min: 0, max: 0xffff }),
    fc.constantFrom(0, 0xfeff, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xfffd, 0xffff),
  );
  test.prop([fc.array(unit, { maxLength: 80 }), fc.integer({ min: 0, max: 90 }), fc.boolean()], runs)(
    'decodeUtf16z = TextDecoder (BOM, lone surrogates, NUL, maxUnits)',
    (units, maxUnits, odd) => {
      const b = new Uint8Array(units.length * 2 + (odd ? 1 : 0));
      units.forEach((u, i) => {
        b[2 * i] = u & 0xff;
        b[2 * i + 1] = u >> 8;
      });
      expect(decodeUtf16z(b, maxUnits)).toBe(decodeUtf16zRef(b, maxUnits));
      expect(decodeUtf16z(b)).toBe(decodeUtf16zRef(b));
    },
  );

  function fileTimeToIsoRef(ft: bigint): string {
    const d = new Date(Number(ft / 10_000n - 11_644_473_600_000n));
    return Number.isNaN(d.getTime()) ? `filetime:${ft}` : d.toISOString();
  }
  test.prop([fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })], { numRuns: 2000 })(
    'fileTimeToIso = Date#toISOString over the whole u64 range',
    (ft) => {
      expect(fileTimeToIso(ft)).toBe(fileTimeToIsoRef(ft));
    },
  );
  test.prop(
    [fc.integer({ min: -11_644_473_600_000, max: 253_402_300_799_999 }), fc.bigInt({ min: 0n, max: 9999n })],
    {
      numRuns: 3000,
    },
  )('fileTimeToIso = Date#toISOString for years 1601..9999', (ms, ticks) => {
    const ft = fileTimeFromMs(ms) + ticks;
    expect(fileTimeToIso(ft)).toBe(fileTimeToIsoRef(ft));
  });
  it('fileTimeToIso at the edges of the fast range and on leap days', () => {
    for (const ms of [
      -11_644_473_600_000, 0, -1, 951_782_400_000, 951_868_800_000, 4_107_542_400_000, 253_402_300_799_999,
      253_402_300_800_000,
    ]) {
      expect(fileTimeToIso(fileTimeFromMs(ms))).toBe(fileTimeToIsoRef(fileTimeFromMs(ms)));
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// crypto

function cbcEncryptRef(ks: KeySchedule, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  let prev = iv;
  for (let i = 0; i < data.length; i += 16) {
    for (let j = 0; j < 16; j++) out[i + j] = data[i + j]! ^ prev[j]!;
    encryptBlock(ks, out, i, out, i);
    prev = out.subarray(i, i + 16);
  }
  return out;
}
function cbcDecryptRef(ks: KeySchedule, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i += 16) {
    decryptBlock(ks, data, i, out, i);
    const prev = i === 0 ? iv : data.subarray(i - 16, i);
    for (let j = 0; j < 16; j++) out[i + j]! ^= prev[j]!;
  }
  return out;
}

describe('crypto fast paths', () => {
  const schedules: [string, KeySchedule][] = [
    ['V4', V4_SCHEDULE],
    ['V5', V5_SCHEDULE],
    ['V6', V6_SCHEDULE],
    ['AES-256', expandKey(new Uint8Array(32).fill(3))],
  ];
  const blocks = fc
    .integer({ min: 0, max: 20 })
    .chain((n) => fc.uint8Array({ minLength: 16 * n, maxLength: 16 * n }));
  test.prop([fc.constantFrom(...schedules), fc.uint8Array({ minLength: 16, maxLength: 16 }), blocks], runs)(
    'word-based CBC = block-by-block CBC, both directions, copying and in place',
    ([, ks], iv, data) => {
      const enc = cbcEncryptRef(ks, iv, data);
      expect(cbcEncrypt(ks, iv, data)).toEqual(enc);
      expect(cbcDecrypt(ks, iv, enc)).toEqual(data);
      expect(cbcDecryptRef(ks, iv, enc)).toEqual(data);
      // In place, at an offset, IV in the same buffer before the region.
      const buf = new Uint8Array(16 + data.length + 5);
      buf.set(iv, 0);
      buf.set(data, 16);
      cbcEncryptRegion(ks, buf, 0, buf, 16, data.length, buf, 16);
      expect(buf.subarray(16, 16 + data.length)).toEqual(enc);
      cbcDecryptRegion(ks, buf, 0, buf, 16, data.length, buf, 16);
      expect(buf.subarray(16, 16 + data.length)).toEqual(data);
      const copy = enc.slice();
      cbcDecryptInto(ks, iv, copy, 0, copy.length, copy, 0);
      expect(copy).toEqual(data);
    },
  );

  function v4MacRef(message: Uint8Array): Uint8Array {
    const padded = new Uint8Array(message.length + 16 - (message.length % 16));
    padded.set(message);
    padded[message.length] = 0x80;
    const c = cbcEncryptRef(V4_SCHEDULE, new Uint8Array(16), padded);
    return c.slice(c.length - 16);
  }
  test.prop([fc.uint8Array({ maxLength: 300 })], runs)('v4Mac = CBC-MAC with ISO 9797-1 padding 2', (m) => {
    expect(v4Mac(m)).toEqual(v4MacRef(m));
  });

  test.prop(
    [
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.uint8Array({ maxLength: 400 }),
      fc.constantFrom(-1, 0, 1),
    ],
    runs,
  )('v6HmacInto = v6Hmac = node:crypto HMAC-SHA256 with the slot key; sha256Into = sha256', (t, m, k) => {
    const out = new Uint8Array(20).fill(9);
    const r1 = outcome(() => v6Hmac(t, m, k));
    const r2 = outcome(() => {
      v6HmacInto(t, m, out, 2, k);
      return out.slice(2, 18);
    });
    expect(r2).toEqual(r1);
    if ('ok' in r1) {
      const full = crypto.createHmac('sha256', v6HmacKey(t, k)).update(m).digest();
      expect(Buffer.from(r1.ok)).toEqual(full.subarray(16));
      expect(Buffer.from(hmac(nobleSha256, v6HmacKey(t, k), m).slice(16))).toEqual(full.subarray(16));
      expect(out[0]).toBe(9);
      expect(out[18]).toBe(9);
    }
    const h = new Uint8Array(34);
    sha256Into(m, h, 1);
    expect(h.subarray(1, 33)).toEqual(sha256(m));
    expect(Buffer.from(h.subarray(1, 33))).toEqual(crypto.createHash('sha256').update(m).digest());
  });
});

// ---------------------------------------------------------------------------------------------------
// kms

/** Damage the encoder once made itself; the harness's tamperStub now makes it on the encoded stub. */
type Tamper = 'mac' | 'ciphertext' | null;

/** The V5/V6 response encoder as it was (Writer, padded copy, encrypted copy, tamper included). */
function encodeV56Ref(
  version: 5 | 6,
  q: Uint8Array,
  body: KmsResponseBody,
  opts: { random: (n: number) => Uint8Array; hwid: Uint8Array; tamper?: Tamper },
): Uint8Array {
  const bodyLen = responseBodyLength(body.epid);
  const plainLen = version === 5 ? 16 + bodyLen + 48 : 16 + bodyLen + 48 + 8 + 16 + 16;
  const w = new Writer(plainLen);
  w.raw(version === 5 ? q : opts.random(16));
  writeResponseBody(w, body);
  const rand2 = opts.random(16);
  const xored = new Uint8Array(16);
  for (let i = 0; i < 16; i++) xored[i] = rand2[i]! ^ q[i]!;
  w.raw(xored).raw(nobleSha256(rand2));
  if (opts.tamper === 'mac' && version === 5) w.bytes[w.offset - 1]! ^= 0x01;
  if (version === 6) {
    if (opts.hwid.length !== 8) throw new RangeError('HwId must be 8 bytes');
    w.raw(opts.hwid).raw(q);
    const mac = v6Hmac(body.clientTime, w.bytes.subarray(0, w.offset));
    if (opts.tamper === 'mac') mac[0]! ^= 0x01;
    w.raw(mac);
  }
  const plain = pkcs7Pad(w.finish());
  const cipher = cbcEncryptRef(version === 5 ? V5_SCHEDULE : V6_SCHEDULE, new Uint8Array(16), plain);
  if (opts.tamper === 'ciphertext') cipher[cipher.length - 20]! ^= 0x01;
  const out = new Uint8Array(4 + cipher.length);
  out[0] = body.minorVersion & 0xff;
  out[1] = body.minorVersion >>> 8;
  out[2] = body.majorVersion & 0xff;
  out[3] = body.majorVersion >>> 8;
  out.set(cipher, 4);
  return out;
}

function wrapResponseStubRef(message: Uint8Array, syntax: NdrSyntax, hresult = 0): Uint8Array {
  const len = message.length;
  const w = new Writer((syntax === 'ndr32' ? 12 : 24) + len + ((4 - (len & 3)) & 3) + 4);
  if (syntax === 'ndr32') w.u32(len).u32(REFERENT_ID).u32(len);
  else w.u64(BigInt(len)).u64(BigInt(REFERENT_ID)).u64(BigInt(len));
  return w.raw(message).align4().u32(hresult).finish();
}

const epidArb = fc.oneof(
  fc.constant('06401-00206-271-395032-03-1033-17763.0000-2452019'),
  fc.string({ maxLength: 70, unit: 'binary' }),
);
const responseBody = fc.record({
  minorVersion: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })),
  majorVersion: fc.constantFrom(5, 6),
  epid: epidArb,
  cmid: fc.uuid(),
  clientTime: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  currentCount: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  activationInterval: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  renewalInterval: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
});

describe('kms fast paths', () => {
  test.prop(
    [
      fc.constantFrom(5 as const, 6 as const),
      responseBody,
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.constantFrom<Tamper>(null, 'mac', 'ciphertext'),
      fc.constantFrom<NdrSyntax>('ndr32', 'ndr64'),
      fc.string(),
    ],
    runs,
  )(
    'encodeResponse / encodeResponseStub = the Writer encoder (and its errors, random draws); tamperStub = its tamper',
    (version, body, q, tamper, ndr, seed) => {
      const hwid = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
      const req = { version, body: {} as never, q, iv: new Uint8Array(16), integrityOk: true };
      const mk = () => new SeededRandom(seed);
      const r0 = mk();
      const want = outcome(() => encodeV56Ref(version, q, body, { random: (n) => r0.bytes(n), hwid }));
      const r1 = mk();
      const tampered = outcome(() =>
        encodeV56Ref(version, q, body, { random: (n) => r1.bytes(n), hwid, tamper }),
      );
      const r2 = mk();
      const got = outcome(() => encodeResponse(req, body, { random: (n) => r2.bytes(n), hwid }));
      expect(got).toEqual(want);
      expect(r2.uint32()).toBe(r1.uint32()); // the same number of random draws
      const r3 = mk();
      const stub = outcome(() => {
        const s = encodeResponseStub(req, body, { random: (n) => r3.bytes(n), hwid }, ndr);
        return tamper === null ? s : tamperStub(s, tamper, version, ndr);
      });
      expect(stub).toEqual('ok' in tampered ? { ok: wrapResponseStubRef(tampered.ok, ndr) } : tampered);
    },
  );

  it('encodeResponse refuses odd random sources, Q or HwId (caller bugs) with a RangeError', () => {
    const body = {
      minorVersion: 0,
      majorVersion: 6,
      epid: 'x'.repeat(10),
      cmid: NIL_GUID,
      clientTime: 133_000_000_000_000_000n,
      currentCount: 1,
      activationInterval: 2,
      renewalInterval: 3,
    };
    const cases: { random: (n: number) => Uint8Array; q: Uint8Array; hwid: Uint8Array; v: (5 | 6)[] }[] = [
      { random: (n) => new Uint8Array(n + 1), q: new Uint8Array(16), hwid: new Uint8Array(8), v: [5, 6] },
      { random: (n) => new Uint8Array(n).fill(5), q: new Uint8Array(15), hwid: new Uint8Array(8), v: [5, 6] },
      { random: (n) => new Uint8Array(n).fill(5), q: new Uint8Array(16), hwid: new Uint8Array(7), v: [6] },
    ];
    for (const c of cases) {
      for (const version of c.v) {
        const req = { version, body: {} as never, q: c.q, iv: new Uint8Array(16), integrityOk: true };
        expect(() => encodeResponse(req, { ...body, majorVersion: version }, c)).toThrow(RangeError);
        expect(() => encodeResponseStub(req, { ...body, majorVersion: version }, c, 'ndr64')).toThrow(
          RangeError,
        );
      }
    }
    // A source that returns the same 16 bytes every time is odd but valid: the same as the Writer encoder.
    const same = { random: () => new Uint8Array(16).fill(1), q: new Uint8Array(16), hwid: new Uint8Array(8) };
    for (const version of [5, 6] as const) {
      const req = { version, body: {} as never, q: same.q, iv: new Uint8Array(16), integrityOk: true };
      const got = outcome(() => encodeResponse(req, { ...body, majorVersion: version }, same));
      expect(got).toEqual(
        outcome(() => encodeV56Ref(version, same.q, { ...body, majorVersion: version }, same)),
      );
      expect('ok' in got).toBe(true);
    }
  });

  /** decodeRequestBody as it was: a Reader over exactly 236 bytes from `at`. */
  function decodeRequestBodyRef(b: Uint8Array, at = 0) {
    const r = new Reader(b, at, at + BASE_REQUEST_SIZE);
    r.need(BASE_REQUEST_SIZE, 'BaseRequest');
    const guid = (f: string) => guidFromBytesRef(r.bytesView(16, f));
    return {
      minorVersion: r.u16('MinorVer'),
      majorVersion: r.u16('MajorVer'),
      vmInfo: r.u32('VMInfo'),
      licenseStatus: r.u32('LicenseStatus'),
      bindingExpiration: r.u32('BindingExpiration'),
      applicationId: guid('ApplicationId'),
      skuId: guid('ActivationId'),
      kmsId: guid('KmsCountedId'),
      cmid: guid('ClientMachineId'),
      requiredClientCount: r.u32('RequiredClientCount'),
      clientTime: r.u64('ClientTime'),
      previousCmid: guid('PreviousClientMachineId'),
      workstation: new TextDecoder('utf-16le').decode(
        (() => {
          const v = r.bytesView(128, 'WorkstationName');
          let n = 0;
          while (n < 64 && (v[2 * n] !== 0 || v[2 * n + 1] !== 0)) n++;
          return v.subarray(0, 2 * n);
        })(),
      ),
    };
  }
  test.prop([fc.uint8Array({ minLength: 0, maxLength: 260 }), fc.integer({ min: 0, max: 30 })], runs)(
    'decodeRequestBody = the Reader version (values, key order, errors)',
    (b, at) => {
      const got = outcome(() => decodeRequestBody(b, at));
      const want = outcome(() => decodeRequestBodyRef(b, at));
      expect(got).toEqual(want);
      if ('ok' in got && 'ok' in want) expect(Object.keys(got.ok)).toEqual(Object.keys(want.ok));
    },
  );

  test.prop([fc.constantFrom(4, 5, 6), fc.string(), fc.boolean()], { numRuns: 100 })(
    'decodeRequest (decrypt into a reused buffer) returns values that outlive the next call',
    (major, seed, tamper) => {
      const r = new SeededRandom(seed);
      const body = {
        minorVersion: 0,
        majorVersion: major,
        vmInfo: r.uint32(),
        licenseStatus: 2,
        bindingExpiration: 1,
        applicationId: '55c92734-d682-4d71-983e-d6ec3f16059f',
        skuId: '73111121-5638-40f6-bc11-f1d7b0d64300',
        kmsId: '58e2134f-8e11-4d17-9cb2-91069c151148',
        cmid: guidFromBytes(r.bytes(16)),
        requiredClientCount: 25,
        clientTime: fileTimeFromMs(1_700_000_000_000 + r.below(1e9)),
        previousCmid: NIL_GUID,
        workstation: `ws-${seed.length}`,
      };
      const { message, context } = encodeRequest(body, { random: (n) => r.bytes(n) });
      if (tamper) message[message.length - 1]! ^= 1;
      const first = outcome(() => decodeRequest(message, { lenient: true }));
      const again = outcome(() => decodeRequest(message, { lenient: true }));
      // A second, different decode in between must not change what the first returned.
      const other = encodeRequest({ ...body, cmid: NIL_GUID }, { random: (n) => r.bytes(n) }).message;
      decodeRequest(other, { lenient: true });
      expect(first).toEqual(again);
      if ('ok' in first && !tamper) {
        expect(first.ok.body).toEqual(body);
        if (major !== 4) expect(first.ok.q).toEqual(context.q);
      }
    },
  );

  test.prop(
    [
      fc.constantFrom<NdrSyntax>('ndr32', 'ndr64'),
      fc.uint8Array({ maxLength: 40 }),
      fc.nat({ max: 0xffffffff }),
      fc.nat({ max: 0xffffffff }),
    ],
    runs,
  )('unwrapRequestStub = the Reader version; wrapResponseStub = the Writer version', (ndr, tail, a, b) => {
    const head = new Uint8Array(ndr === 'ndr32' ? 8 : 16);
    const dv = new DataView(head.buffer);
    if (ndr === 'ndr32') {
      dv.setUint32(0, a % 64, true);
      dv.setUint32(4, b % 64, true);
    } else {
      dv.setBigUint64(0, BigInt(a % 64) | (BigInt(b) << 32n), true);
      dv.setBigUint64(8, BigInt(b % 64), true);
    }
    const stub = new Uint8Array([...head, ...tail]);
    const ref = (s: Uint8Array) => {
      const r = new Reader(s);
      let size: number;
      let count: number;
      if (ndr === 'ndr32') {
        size = r.u32('requestSize');
        count = r.u32('max_count');
      } else {
        const s64 = r.u64('requestSize');
        const c64 = r.u64('max_count');
        size = Number(s64 & 0xffffffffn);
        count = c64 > 0xffffffffn ? 0xffffffff : Number(c64);
      }
      const n = Math.min(size, count);
      if (n < 4) throw new ProtocolError('BAD_STUB', `requestSize ${n} leaves no room for the version`);
      if (n > r.remaining)
        throw new ProtocolError('BAD_STUB', `requestSize ${n} but the stub holds ${r.remaining} bytes`);
      return r.bytesView(n, 'request');
    };
    const got = outcome(() => unwrapRequestStub(stub, ndr));
    const want = outcome(() => ref(stub));
    expect(got).toEqual(want);
    expect(wrapResponseStub(tail, ndr, a)).toEqual(wrapResponseStubRef(tail, ndr, a));
    expect(unwrapRequestStub(wrapRequestStub(tail.length >= 4 ? tail : new Uint8Array(4), ndr), ndr)).toEqual(
      tail.length >= 4 ? tail : new Uint8Array(4),
    );
  });

  test.prop(
    [fc.record({ minorVersion: fc.integer({ min: -2, max: 0x1ffff }), epid: epidArb }), fc.uuid()],
    runs,
  )('writeResponseBodyAt = writeResponseBody', (o, cmid) => {
    const body = {
      minorVersion: o.minorVersion,
      majorVersion: 6,
      epid: o.epid,
      cmid,
      clientTime: 2n ** 63n + 5n,
      currentCount: 50,
      activationInterval: 120,
      renewalInterval: 10080,
    };
    const n = responseBodyLength(body.epid);
    const w = new Writer(n);
    const want = outcome(() => {
      writeResponseBody(w, body);
      return w.bytes;
    });
    const out = new Uint8Array(n + 3);
    const got = outcome(() => {
      expect(writeResponseBodyAt(out, 3, body)).toBe(n + 3);
      return out.slice(3);
    });
    expect(got).toEqual(want);
  });
});

// ---------------------------------------------------------------------------------------------------
// rpc

describe('rpc fast paths', () => {
  test.prop(
    [
      fc.nat({ max: 0xffffffff }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.uint8Array({ maxLength: 64 }),
      fc.integer({ min: 0, max: 0xff }),
      fc.integer({ min: 0, max: 3 }),
    ],
    runs,
  )(
    'decodePdu on a request = header + decodeRequestBody (same object, same key order)',
    (callId, ctx, opnum, stub, flags, minor) => {
      const bytes = encodePdu({
        type: PTYPE.REQUEST,
        flags: flags & ~PFC.OBJECT_UUID,
        callId,
        rpcVersionMinor: minor,
        drep: [0x10, minor, 0, 0],
        allocHint: stub.length,
        contextId: ctx,
        opnum,
        stub,
      });
      const h = decodeHeader(bytes);
      const common: PduCommon = {
        flags: h.flags,
        callId: h.callId,
        rpcVersionMinor: h.rpcVersionMinor,
        drep: h.drep,
      };
      const want = {
        type: PTYPE.REQUEST,
        ...common,
        ...decodeRpcRequestBody(new Reader(bytes, 16, bytes.length), h.flags),
      };
      const got = decodePdu(bytes);
      expect(got).toEqual(want);
      expect(Object.keys(got)).toEqual(Object.keys(want));
    },
  );

  test.prop(
    [fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 200 })],
    runs,
  )('Association#respond = encodePdu(makeResponse(…))', (callId, contextId, stub) => {
    const a = new Association({
      profile: { ndr64: true, btfn: true },
      secondaryAddress: '1688',
      maxPduSize: 5840,
      maxCallSize: 65536,
      newAssocGroupId: () => 1,
    });
    a.receive(bindBytes(1));
    const got = a.respond({ callId, contextId, opnum: 0, syntax: 'ndr32', stub }, stub);
    expect(got).toEqual(encodePdu(makeResponse(callId, contextId, stub)));
    expect(DREP_LE).toEqual([0x10, 0, 0, 0]);
  });

  it('a request with an object UUID still decodes through the general path', () => {
    const stub = new Uint8Array([1, 2, 3, 4]);
    const bytes = encodePdu({
      type: PTYPE.REQUEST,
      flags: PFC.FIRST_FRAG | PFC.LAST_FRAG,
      callId: 7,
      rpcVersionMinor: 0,
      drep: DREP_LE,
      allocHint: 4,
      contextId: 1,
      opnum: 0,
      objectUuid: NIL_GUID,
      stub,
    });
    expect(decodePdu(bytes)).toMatchObject({ objectUuid: NIL_GUID, stub });
    expect(decodePdu(requestBytes(3, 1, stub))).toMatchObject({ callId: 3, contextId: 1, stub });
  });
});
