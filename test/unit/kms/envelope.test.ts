import { describe, expect, it } from 'vitest';
import { cbcDecrypt } from '../../../src/crypto/cbc.js';
import { V5_SCHEDULE, V6_SCHEDULE } from '../../../src/crypto/keys.js';
import { responseBodyLength } from '../../../src/kms/body.js';
import { decodeRequest, encodeRequest, encodeResponse, verifyResponse } from '../../../src/kms/envelope.js';
import type { DecodedRequest, KmsResponseBody, RequestContext } from '../../../src/kms/messages.js';
import { unwrapRequestStub, unwrapResponseStub, wrapResponseStub } from '../../../src/kms/stub.js';
import { ProtocolError } from '../../../src/wire/errors.js';
import { fileTimeToIso } from '../../../src/wire/filetime.js';
import { fromHex, hex } from '../../../src/wire/utf16.js';
import { captureNames, kmsVectors, loadCapture, pduBytes, replayRandom } from '../../helpers/fixtures.js';

const vec = kmsVectors();
const common = vec.messages['common']!;

function expectCommon(d: DecodedRequest): void {
  expect(d.body.applicationId).toBe(common['appId']);
  expect(d.body.skuId).toBe(common['skuId']);
  expect(d.body.kmsId).toBe(common['kmsId']);
  expect(d.body.cmid).toBe(common['cmid']);
  expect(d.body.requiredClientCount).toBe(common['nPolicy']);
  expect(d.body.licenseStatus).toBe(common['licenseStatus']);
  expect(d.body.bindingExpiration).toBe(common['bindingExpiration']);
  expect(d.body.workstation).toBe(common['workstation']);
  expect(fileTimeToIso(d.body.clientTime)).toBe('2024-01-01T00:00:00.000Z');
}

function responseBody(d: DecodedRequest): KmsResponseBody {
  return {
    minorVersion: 0,
    majorVersion: d.version,
    epid: String(common['epid']),
    cmid: d.body.cmid,
    clientTime: d.body.clientTime,
    currentCount: Number(common['count']),
    activationInterval: Number(common['activationInterval']),
    renewalInterval: Number(common['renewalInterval']),
  };
}

const hwid = fromHex(String(common['hwid']));

describe('spec test vectors (c.7)', () => {
  it('V4: request decodes, MAC checks, re-encodes byte for byte; response reproduces exactly', () => {
    const v4 = vec.messages['v4']!;
    const d = decodeRequest(fromHex(String(v4['request_252'])));
    expect(d.version).toBe(4);
    expect(d.integrityOk).toBe(true);
    expectCommon(d);
    expect(hex(encodeRequest(d.body).message)).toBe(v4['request_252']);
    const resp = encodeResponse(d, responseBody(d), { random: replayRandom(), hwid });
    expect(hex(resp)).toBe(v4['response_160']);
    const ctx: RequestContext = {
      version: 4,
      minorVersion: 0,
      cmid: d.body.cmid,
      clientTime: d.body.clientTime,
      iv: null,
      q: null,
    };
    expect(verifyResponse(resp, ctx).body.epid).toBe(common['epid']);
  });

  for (const v of ['v5', 'v6'] as const) {
    it(`${v}: request decrypts to Q and the base; response reproduces the vector exactly and verifies`, () => {
      const m = vec.messages[v]!;
      const d = decodeRequest(fromHex(String(m['request_260'])));
      expect(hex(d.q!)).toBe(m['Q_first_block_of_decrypted_request']);
      expect(d.integrityOk).toBe(true);
      expectCommon(d);
      // The vectors' `rand2` field does not satisfy SHA-256(rand2) = Hash (see fixtures/README.md), so
      // Rand2 is taken from the plaintext the vector gives: RandomXoredIVs XOR Q (spec c.5).
      const plain = fromHex(String(m['response_plaintext_zero_iv_view_incl_padding']));
      const at = 16 + responseBodyLength(String(common['epid']));
      const rand2 = plain.slice(at, at + 16).map((x, k) => x ^ d.q![k]!);
      const chunks = v === 'v6' ? [fromHex(String(m['R_first_plaintext_block'])), rand2] : [rand2];
      const resp = encodeResponse(d, responseBody(d), { random: replayRandom(...chunks), hwid });
      expect(resp.length).toBe(m['response_len']);
      expect(hex(resp)).toBe(m['response']);
      const ctx: RequestContext = {
        version: d.version,
        minorVersion: 0,
        cmid: d.body.cmid,
        clientTime: d.body.clientTime,
        iv: d.iv,
        q: d.q,
      };
      const r = verifyResponse(resp, ctx);
      expect(r.body.currentCount).toBe(50);
      if (v === 'v6') {
        expect(hex(r.hwid!)).toBe(common['hwid']);
        expect(r.hmacSlot).toBe(0);
      }
    });
  }
});

/** Client-side view of a captured conversation: request contexts from the requests we decode. */
function capturedExchanges(name: string) {
  const cap = loadCapture(name);
  const out: {
    req: DecodedRequest;
    reqMsg: Uint8Array;
    resp: { hresult: number; message: Uint8Array | null };
    respStub: Uint8Array;
    ndr: 'ndr32' | 'ndr64';
  }[] = [];
  let pending: { req: DecodedRequest; reqMsg: Uint8Array; ndr: 'ndr32' | 'ndr64' } | null = null;
  for (const p of cap.pdus) {
    if (!p.hex || !p.rpc) continue;
    const bytes = pduBytes(p);
    const ndr = p.rpc.syntax === 'NDR64' ? 'ndr64' : 'ndr32';
    if (p.dir === 'c2s' && p.rpc.ptype === 0) {
      const msg = unwrapRequestStub(bytes.subarray(24), ndr);
      pending = { req: decodeRequest(msg, { lenient: true }), reqMsg: msg, ndr };
    } else if (p.dir === 's2c' && p.rpc.ptype === 2 && pending) {
      out.push({
        ...pending,
        resp: unwrapResponseStub(bytes.subarray(24), ndr),
        respStub: bytes.subarray(24),
      });
      pending = null;
    }
  }
  return { cap, out };
}

describe('captured vlmcsd conversations', () => {
  const names = captureNames(/^v[456]-/);
  it('there are captures to check', () => {
    expect(names.length).toBeGreaterThanOrEqual(15);
  });
  for (const name of names) {
    it(`${name}: requests decode to what vlmcs printed; responses verify and re-encode exactly`, () => {
      const { cap, out } = capturedExchanges(name);
      const printedReq = cap.kms_decoded_by_vlmcs!.requests;
      const printedResp = cap.kms_decoded_by_vlmcs!.responses;
      expect(out.length).toBe(printedResp.length);
      out.forEach(({ req, resp, respStub, ndr }, i) => {
        const p = printedReq[i]!;
        const b = req.body;
        expect(`${b.majorVersion}.${b.minorVersion}`).toBe(p['Protocol version']);
        expect(p['Application ID']!.startsWith(b.applicationId)).toBe(true);
        expect(p['SKU ID (aka Activation ID)']!.startsWith(b.skuId)).toBe(true);
        expect(p['KMS ID (aka KMS counted ID)']!.startsWith(b.kmsId)).toBe(true);
        expect(b.cmid).toBe(p['Client machine ID']);
        expect(b.previousCmid).toBe(p['Previous client machine ID']);
        expect(b.workstation).toBe(p['Workstation name']);
        expect(String(b.requiredClientCount)).toBe(p['N count policy (minimum clients)']);
        expect(p['Licensing status']!.startsWith(String(b.licenseStatus))).toBe(true);
        expect(p['Remaining time (0 = forever)']).toBe(`${b.bindingExpiration} minutes`);
        expect(fileTimeToIso(b.clientTime).slice(0, 19).replace('T', ' ')).toBe(
          p['Client request timestamp (UTC)'],
        );
        expect(req.integrityOk).toBe(true);

        expect(resp.hresult).toBe(0);
        const msg = resp.message!;
        const ctx: RequestContext = {
          version: req.version,
          minorVersion: 0,
          cmid: b.cmid,
          clientTime: b.clientTime,
          iv: req.iv,
          q: req.q,
        };
        const v = verifyResponse(msg, ctx);
        const pr = printedResp[i]!;
        expect(v.body.epid).toBe(pr['KMS host extended PID']);
        expect(String(v.body.currentCount)).toBe(pr['KMS host current active clients']);
        expect(String(v.body.renewalInterval)).toBe(pr['Renewal interval policy']);
        expect(String(v.body.activationInterval)).toBe(pr['Activation interval policy']);
        expect(pr['Size of KMS Response']!.startsWith(String(msg.length))).toBe(true);
        if (req.version === 6) expect(hex(v.hwid!).toUpperCase()).toBe(pr['KMS host Hardware ID']);

        // Re-encode from the decoded fields plus the random values the reference host chose.
        const chunks: Uint8Array[] = [];
        if (req.version !== 4) {
          const plain = cbcDecrypt(
            req.version === 5 ? V5_SCHEDULE : V6_SCHEDULE,
            new Uint8Array(16),
            msg.subarray(4),
          );
          const end = 16 + responseBodyLength(v.body.epid);
          const rand2 = plain.slice(end, end + 16).map((x, k) => x ^ req.q![k]!);
          if (req.version === 6) chunks.push(plain.slice(0, 16));
          chunks.push(rand2);
        }
        const again = encodeResponse(req, v.body, {
          random: replayRandom(...chunks),
          hwid: v.hwid ?? new Uint8Array(8),
        });
        expect(hex(again)).toBe(hex(msg));
        expect(hex(wrapResponseStub(again, ndr))).toBe(hex(respStub));
      });
    });
  }
});

describe('client verification rejects tampering', () => {
  const m = vec.messages['v6']!;
  const d = decodeRequest(fromHex(String(m['request_260'])));
  const ctx: RequestContext = {
    version: 6,
    minorVersion: 0,
    cmid: d.body.cmid,
    clientTime: d.body.clientTime,
    iv: d.iv,
    q: d.q,
  };
  const good = fromHex(String(m['response']));
  it('accepts the untouched response', () => {
    expect(verifyResponse(good, ctx).body.currentCount).toBe(50);
  });
  it('every single-bit flip past the version is caught as a ProtocolError', () => {
    for (let i = 4; i < good.length; i++) {
      const bad = good.slice();
      bad[i]! ^= 0x10;
      expect(() => verifyResponse(bad, ctx), `byte ${i}`).toThrow(ProtocolError);
    }
  });
  it('a wrong CMID or time in the context is a BAD_ECHO', () => {
    const e = (() => {
      try {
        verifyResponse(good, { ...ctx, cmid: '00000000-0000-0000-0000-000000000001' });
      } catch (err) {
        return err as ProtocolError;
      }
    })();
    expect(e?.code).toBe('BAD_ECHO');
  });
});

describe('host-side request errors', () => {
  it('version 7 and short messages are typed errors', () => {
    const m = fromHex(String(vec.messages['v6']!['request_260']));
    const v7 = m.slice();
    v7[2] = 7;
    expect(() => decodeRequest(v7)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_VERSION' }));
    expect(() => decodeRequest(m.subarray(0, 100))).toThrow(expect.objectContaining({ code: 'BAD_MESSAGE' }));
    expect(() => decodeRequest(m.subarray(0, 2))).toThrow(expect.objectContaining({ code: 'BAD_MESSAGE' }));
  });
  it('a corrupted V6 ciphertext fails the pad check unless lenient', () => {
    const m = fromHex(String(vec.messages['v6']!['request_260']));
    m[259]! ^= 0xff;
    expect(() => decodeRequest(m)).toThrow(expect.objectContaining({ code: 'BAD_PADDING' }));
    expect(decodeRequest(m, { lenient: true }).integrityOk).toBe(false);
  });
  it('a bad V4 MAC is refused unless lenient', () => {
    const m = fromHex(String(vec.messages['v4']!['request_252']));
    m[251]! ^= 1;
    expect(() => decodeRequest(m)).toThrow(expect.objectContaining({ code: 'BAD_MAC' }));
  });
});
