import { createCipheriv, createDecipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decryptBlock, encryptBlock, expandKey } from '../../../src/crypto/aes.js';
import {
  cbcDecrypt,
  cbcDecryptInto,
  cbcEncrypt,
  cbcEncryptInto,
  pkcs7Pad,
  pkcs7PadLength,
  pkcs7Unpad,
} from '../../../src/crypto/cbc.js';
import { V5_KEY, V5_SCHEDULE, V6_SCHEDULE } from '../../../src/crypto/keys.js';
import { ProtocolError } from '../../../src/wire/errors.js';
import { fromHex, hex } from '../../../src/wire/utf16.js';

interface V5V6Message {
  request_base_236: string;
  request_260: string;
  request_decrypted_zero_iv_256: string;
  Q_first_block_of_decrypted_request: string;
  response: string;
  response_len: number;
  response_plaintext_zero_iv_view_incl_padding: string;
  padding_bytes: number;
  rand2: string;
  R_first_plaintext_block?: string;
}
const vectors = JSON.parse(
  readFileSync(new URL('../../../fixtures/vectors/kms-test-vectors.json', import.meta.url), 'utf8'),
) as { messages: { v5: V5V6Message; v6: V5V6Message } };

const ZERO_IV = new Uint8Array(16);
const blocks = (maxBlocks: number) =>
  fc
    .integer({ min: 0, max: maxBlocks })
    .chain((n) => fc.uint8Array({ minLength: 16 * n, maxLength: 16 * n }));
const iv16 = fc.uint8Array({ minLength: 16, maxLength: 16 });

function nodeCbc(dir: 'enc' | 'dec', key: Uint8Array, iv: Uint8Array, data: Uint8Array): string {
  const c = dir === 'enc' ? createCipheriv('aes-128-cbc', key, iv) : createDecipheriv('aes-128-cbc', key, iv);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]).toString('hex');
}

function expectProtocolError(f: () => unknown, code: string): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    expect((e as ProtocolError).code).toBe(code);
    return;
  }
  expect.fail(`expected ProtocolError ${code}`);
}

describe('PKCS#7', () => {
  it('pads with 1..16 bytes of value n to a multiple of 16', () => {
    expect(pkcs7PadLength(0)).toBe(16);
    expect(pkcs7PadLength(236)).toBe(4);
    expect(pkcs7PadLength(240)).toBe(16);
    expect(pkcs7PadLength(255)).toBe(1);
    expect(hex(pkcs7Pad(new Uint8Array(0)))).toBe('10'.repeat(16));
    expect(hex(pkcs7Pad(fromHex('aabbcc')))).toBe(`aabbcc${'0d'.repeat(13)}`);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        const p = pkcs7Pad(data);
        const n = pkcs7PadLength(data.length);
        expect(n).toBeGreaterThanOrEqual(1);
        expect(n).toBeLessThanOrEqual(16);
        expect(p.length).toBe(data.length + n);
        expect(p.length % 16).toBe(0);
        expect(hex(p.subarray(0, data.length))).toBe(hex(data));
        expect([...p.subarray(data.length)].every((b) => b === n)).toBe(true);
        expect(hex(pkcs7Unpad(p))).toBe(hex(data));
      }),
    );
  });

  it('pads like node:crypto auto padding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), iv16, (data, iv) => {
        const c = createCipheriv('aes-128-cbc', V5_KEY, iv);
        const nodeCt = Buffer.concat([c.update(data), c.final()]).toString('hex');
        expect(hex(cbcEncrypt(V5_SCHEDULE, iv, pkcs7Pad(data)))).toBe(nodeCt);
      }),
      { numRuns: 100 },
    );
  });

  it('unpad rejects bad padding with BAD_PADDING', () => {
    const good = pkcs7Pad(new Uint8Array(5));
    expect(pkcs7Unpad(good).length).toBe(5);
    for (const bad of [
      new Uint8Array(0),
      new Uint8Array(16), // last byte 0
      Uint8Array.of(...new Uint8Array(15), 17),
      Uint8Array.of(...new Uint8Array(14), 3, 2), // 2 bytes but one is 3
      Uint8Array.of(1, 2, 3, 1), // not a multiple of 16
    ]) {
      expectProtocolError(() => pkcs7Unpad(bad), 'BAD_PADDING');
    }
    const p = pkcs7Pad(new Uint8Array(10));
    p[11] = 0;
    expectProtocolError(() => pkcs7Unpad(p), 'BAD_PADDING');
  });
});

describe('CBC against node:crypto aes-128-cbc (no padding)', () => {
  it('encrypt and decrypt, random keys, IVs and data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), iv16, blocks(20), (key, iv, data) => {
        const ks = expandKey(key);
        expect(hex(cbcEncrypt(ks, iv, data))).toBe(nodeCbc('enc', key, iv, data));
        expect(hex(cbcDecrypt(ks, iv, data))).toBe(nodeCbc('dec', key, iv, data));
        expect(hex(cbcDecrypt(ks, iv, cbcEncrypt(ks, iv, data)))).toBe(hex(data));
      }),
      { numRuns: 200 },
    );
  });

  it('V5 key round trip', () => {
    fc.assert(
      fc.property(iv16, blocks(17), (iv, data) => {
        const ct = cbcEncrypt(V5_SCHEDULE, iv, data);
        expect(hex(ct)).toBe(nodeCbc('enc', V5_KEY, iv, data));
        expect(hex(cbcDecrypt(V5_SCHEDULE, iv, ct))).toBe(hex(data));
        expect(nodeCbc('dec', V5_KEY, iv, ct)).toBe(hex(data));
      }),
      { numRuns: 200 },
    );
  });

  it('V6 (tweaked) round trip, and chaining is E(P xor previous C)', () => {
    fc.assert(
      fc.property(iv16, blocks(17), (iv, data) => {
        const ct = cbcEncrypt(V6_SCHEDULE, iv, data);
        expect(hex(cbcDecrypt(V6_SCHEDULE, iv, ct))).toBe(hex(data));
        let prev: Uint8Array = iv;
        for (let i = 0; i < data.length; i += 16) {
          const x = data.slice(i, i + 16).map((b, j) => b ^ prev[j]!);
          encryptBlock(V6_SCHEDULE, x, 0, x, 0);
          expect(hex(x)).toBe(hex(ct.subarray(i, i + 16)));
          prev = ct.subarray(i, i + 16);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('in-place and offset variants', () => {
  it('match the copying versions, in place and between buffers at offsets', () => {
    fc.assert(
      fc.property(
        iv16,
        blocks(17),
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 20 }),
        fc.boolean(),
        (iv, data, off, off2, v6) => {
          const ks = v6 ? V6_SCHEDULE : V5_SCHEDULE;
          const ct = cbcEncrypt(ks, iv, data);
          const pt = cbcDecrypt(ks, iv, data);

          const buf = new Uint8Array(off + data.length + 7).fill(0xee);
          buf.set(data, off);
          cbcEncryptInto(ks, iv, buf, off, data.length, buf, off);
          expect(hex(buf.subarray(off, off + data.length))).toBe(hex(ct));
          cbcDecryptInto(ks, iv, buf, off, data.length, buf, off);
          expect(hex(buf.subarray(off, off + data.length))).toBe(hex(data));
          expect(buf.subarray(0, off).every((b) => b === 0xee)).toBe(true);
          expect(buf.subarray(off + data.length).every((b) => b === 0xee)).toBe(true);

          cbcDecryptInto(ks, iv, buf, off, data.length, buf, off);
          expect(hex(buf.subarray(off, off + data.length))).toBe(hex(pt));

          const out = new Uint8Array(off2 + data.length);
          cbcEncryptInto(ks, iv, data, 0, data.length, out, off2);
          expect(hex(out.subarray(off2))).toBe(hex(ct));
          cbcDecryptInto(ks, iv, data, 0, data.length, out, off2);
          expect(hex(out.subarray(off2))).toBe(hex(pt));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('decrypts in place with the IV in the same buffer, just before the data (the wire layout)', () => {
    const m = vectors.messages.v5;
    const wire = fromHex(m.request_260);
    const expected = cbcDecrypt(V5_SCHEDULE, wire.slice(4, 20), wire.subarray(20));
    cbcDecryptInto(V5_SCHEDULE, wire.subarray(4, 20), wire, 20, 240, wire, 20);
    expect(hex(wire.subarray(20))).toBe(hex(expected));
    expect(hex(wire.subarray(20, 256))).toBe(m.request_base_236);
    expect(hex(wire.subarray(256))).toBe('04040404');
  });

  it('does not modify its inputs', () => {
    const iv = fromHex('000102030405060708090a0b0c0d0e0f');
    const data = new Uint8Array(64).fill(9);
    cbcEncrypt(V6_SCHEDULE, iv, data);
    cbcDecrypt(V6_SCHEDULE, iv, data);
    expect(hex(iv)).toBe('000102030405060708090a0b0c0d0e0f');
    expect(data.every((b) => b === 9)).toBe(true);
  });
});

describe('errors', () => {
  it('a length that is not a multiple of 16 is BAD_MESSAGE', () => {
    for (const n of [1, 15, 17, 255]) {
      expectProtocolError(() => cbcDecrypt(V5_SCHEDULE, ZERO_IV, new Uint8Array(n)), 'BAD_MESSAGE');
      expectProtocolError(() => cbcEncrypt(V6_SCHEDULE, ZERO_IV, new Uint8Array(n)), 'BAD_MESSAGE');
    }
    expect(cbcDecrypt(V5_SCHEDULE, ZERO_IV, new Uint8Array(0)).length).toBe(0);
  });

  it('a wrong IV length or an out-of-range region is a RangeError', () => {
    expect(() => cbcEncrypt(V5_SCHEDULE, new Uint8Array(15), new Uint8Array(16))).toThrow(RangeError);
    const b = new Uint8Array(32);
    expect(() => cbcDecryptInto(V5_SCHEDULE, ZERO_IV, b, 16, 32, b, 0)).toThrow(RangeError);
    expect(() => cbcEncryptInto(V5_SCHEDULE, ZERO_IV, b, 0, 32, b, 16)).toThrow(RangeError);
    expect(() => cbcEncryptInto(V5_SCHEDULE, ZERO_IV, b, -16, 16, b, 0)).toThrow(RangeError);
  });
});

describe('KMS V5 / V6 message vectors (zero-IV view, spec c.4–c.6)', () => {
  for (const [name, ks] of [
    ['v5', V5_SCHEDULE],
    ['v6', V6_SCHEDULE],
  ] as const) {
    const m = vectors.messages[name];

    it(`${name}: request bytes 4..259 decrypt with a zero IV to Q ‖ base request ‖ 04040404`, () => {
      const req = fromHex(m.request_260);
      expect(req.length).toBe(260);
      const pt = cbcDecrypt(ks, ZERO_IV, req.subarray(4));
      expect(hex(pt)).toBe(m.request_decrypted_zero_iv_256);
      expect(hex(pt.subarray(0, 16))).toBe(m.Q_first_block_of_decrypted_request);
      expect(hex(pt.subarray(16, 252))).toBe(m.request_base_236);
      expect(hex(pt.subarray(252))).toBe('04040404');
      expect(hex(pkcs7Unpad(pt.subarray(16)))).toBe(m.request_base_236);
      // Q is the block decryption of the wire IV.
      const q = new Uint8Array(16);
      decryptBlock(ks, req, 4, q, 0);
      expect(hex(q)).toBe(m.Q_first_block_of_decrypted_request);
      // The "IV view": decrypting bytes 20.. with IV = bytes 4..19 gives the same base request.
      expect(hex(cbcDecrypt(ks, req.subarray(4, 20), req.subarray(20)))).toBe(
        `${m.request_base_236}04040404`,
      );
    });

    it(`${name}: encrypting the response plaintext reproduces the response from offset 4`, () => {
      const resp = fromHex(m.response);
      expect(resp.length).toBe(m.response_len);
      const pt = fromHex(m.response_plaintext_zero_iv_view_incl_padding);
      expect(pt.length).toBe(resp.length - 4);
      expect(hex(cbcEncrypt(ks, ZERO_IV, pt))).toBe(hex(resp.subarray(4)));
      expect(hex(cbcDecrypt(ks, ZERO_IV, resp.subarray(4)))).toBe(hex(pt));
      // The plaintext's padding is the PKCS#7 padding of its unpadded length.
      const body = pkcs7Unpad(pt);
      expect(pt.length - body.length).toBe(m.padding_bytes);
      expect(hex(pkcs7Pad(body))).toBe(hex(pt));
      // Version header is copied in clear.
      expect(hex(resp.subarray(0, 4))).toBe(m.request_260.slice(0, 8));
    });
  }

  it('v5: the response IV equals the request IV (first plaintext block is Q)', () => {
    const m = vectors.messages.v5;
    expect(m.response.slice(8, 40)).toBe(m.request_260.slice(8, 40));
    expect(m.response_plaintext_zero_iv_view_incl_padding.slice(0, 32)).toBe(
      m.Q_first_block_of_decrypted_request,
    );
  });

  it('v6: the response IV is E6(R) and differs from the request IV', () => {
    const m = vectors.messages.v6;
    const r = fromHex(m.R_first_plaintext_block ?? '');
    expect(hex(r)).toBe(m.response_plaintext_zero_iv_view_incl_padding.slice(0, 32));
    const e = new Uint8Array(16);
    encryptBlock(V6_SCHEDULE, r, 0, e, 0);
    expect(hex(e)).toBe(m.response.slice(8, 40));
    expect(m.response.slice(8, 40)).not.toBe(m.request_260.slice(8, 40));
  });
});
