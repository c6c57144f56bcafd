import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encryptBlock } from '../../../src/crypto/aes.js';
import { cbcEncrypt } from '../../../src/crypto/cbc.js';
import { V4_SCHEDULE } from '../../../src/crypto/keys.js';
import { v4Mac } from '../../../src/crypto/v4-mac.js';
import { fromHex, hex } from '../../../src/wire/utf16.js';

interface Vectors {
  crypto_checks: {
    v4_mac_empty_message: string;
    v4_mac_bytes_00_to_1f: string;
    'v4_mac_bytes_00_to_eb_(236_bytes)': string;
  };
  messages: { v4: { request_base_236: string; request_252: string; response_160: string } };
}
const vectors = JSON.parse(
  readFileSync(new URL('../../../fixtures/vectors/kms-test-vectors.json', import.meta.url), 'utf8'),
) as Vectors;
const checks = vectors.crypto_checks;

const counting = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);

/** Spec d.2 written out: pad with 0x80 then zeros, CBC-encrypt with a zero IV, keep the last block. */
function referenceMac(message: Uint8Array): Uint8Array {
  const padded = new Uint8Array((Math.floor(message.length / 16) + 1) * 16);
  padded.set(message);
  padded[message.length] = 0x80;
  const ct = cbcEncrypt(V4_SCHEDULE, new Uint8Array(16), padded);
  return ct.subarray(ct.length - 16);
}

describe('v4Mac (spec d.2)', () => {
  it('check values: empty, 00..1f, 00..eb', () => {
    expect(hex(v4Mac(new Uint8Array(0)))).toBe(checks.v4_mac_empty_message);
    expect(hex(v4Mac(counting(32)))).toBe(checks.v4_mac_bytes_00_to_1f);
    expect(hex(v4Mac(counting(236)))).toBe(checks['v4_mac_bytes_00_to_eb_(236_bytes)']);
  });

  it('the empty message is one block 80 00..00, encrypted', () => {
    const b = new Uint8Array(16);
    b[0] = 0x80;
    encryptBlock(V4_SCHEDULE, b, 0, b, 0);
    expect(hex(b)).toBe(checks.v4_mac_empty_message);
  });

  it('a whole number of blocks gets an extra 80 00..00 block (no CMAC subkeys)', () => {
    const m = counting(16);
    const x = m.slice();
    encryptBlock(V4_SCHEDULE, x, 0, x, 0);
    x[0]! ^= 0x80;
    encryptBlock(V4_SCHEDULE, x, 0, x, 0);
    expect(hex(v4Mac(m))).toBe(hex(x));
  });

  it('matches the V4 request and response MACs in the message vectors', () => {
    const req = fromHex(vectors.messages.v4.request_252);
    expect(hex(req.subarray(0, 236))).toBe(vectors.messages.v4.request_base_236);
    expect(hex(v4Mac(req.subarray(0, 236)))).toBe(hex(req.subarray(236)));
    const resp = fromHex(vectors.messages.v4.response_160);
    expect(hex(v4Mac(resp.subarray(0, 144)))).toBe(hex(resp.subarray(144)));
    expect(hex(resp.subarray(144))).toBe('c6c00b642d3bd570b3e3c2f45fff63db'); // spec c.7
  });

  it('equals the padded CBC-MAC reference for any length, and reads subarrays in place', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(20), (m, pre) => {
        const expected = hex(referenceMac(m));
        expect(hex(v4Mac(m))).toBe(expected);
        const backing = new Uint8Array(pre + m.length + 5).fill(0xab);
        backing.set(m, pre);
        const before = hex(backing);
        expect(hex(v4Mac(backing.subarray(pre, pre + m.length)))).toBe(expected);
        expect(hex(backing)).toBe(before);
      }),
      { numRuns: 300 },
    );
  });

  it('changes when any byte changes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (m, i, d) => {
          const m2 = m.slice();
          m2[i % m.length]! ^= d;
          expect(hex(v4Mac(m2))).not.toBe(hex(v4Mac(m)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('appending a zero byte changes the MAC (the 0x80 marker makes padding unambiguous)', () => {
    expect(hex(v4Mac(new Uint8Array(5)))).not.toBe(hex(v4Mac(new Uint8Array(6))));
    expect(hex(v4Mac(new Uint8Array(0)))).not.toBe(hex(v4Mac(new Uint8Array(16))));
  });
});
