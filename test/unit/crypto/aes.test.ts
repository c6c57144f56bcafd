import { createCipheriv, createDecipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { unsafe as nobleAes } from '@noble/ciphers/aes.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decryptBlock,
  encryptBlock,
  expandedKeyBytes,
  expandKey,
  type KeyTweak,
} from '../../../src/crypto/aes.js';
import {
  V4_KEY,
  V4_SCHEDULE,
  V5_KEY,
  V5_SCHEDULE,
  V6_KEY,
  V6_SCHEDULE,
  V6_TWEAK,
} from '../../../src/crypto/keys.js';
import { fromHex, hex } from '../../../src/wire/utf16.js';

interface CryptoChecks {
  aes128_fips197_c1: { key: string; pt: string; ct: string };
  v4_rijndael160_encrypt_zero_block: string;
  v5_aes128_encrypt_zero_block: string;
  v6_modified_aes_encrypt_zero_block: string;
  v6_modified_aes_decrypt_zero_block: string;
  'standard_aes128_with_v6_key_zero_block_(NOT_what_KMS_uses)': string;
  v4_expanded_key_192_bytes: string;
  v6_expanded_key_176_bytes_after_xor: string;
}
const vectors = JSON.parse(
  readFileSync(new URL('../../../fixtures/vectors/kms-test-vectors.json', import.meta.url), 'utf8'),
) as { crypto_checks: CryptoChecks };
const checks = vectors.crypto_checks;

const ZERO = new Uint8Array(16);

function enc(ks: ReturnType<typeof expandKey>, block: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  encryptBlock(ks, block, 0, out, 0);
  return out;
}
function dec(ks: ReturnType<typeof expandKey>, block: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  decryptBlock(ks, block, 0, out, 0);
  return out;
}

// -------------------------------------------------------------------------------------------------
// A deliberately plain, slow, byte-oriented Rijndael written straight from the FIPS-197 round
// description (state as 16 bytes, column-major). Shares no code or tables with src/crypto/aes.ts: the
// S-box comes from a brute-force GF(2^8) inverse and the bitwise affine formula.

function gmul(a: number, b: number): number {
  let p = 0;
  for (let i = 0; i < 8; i++) {
    if (b & 1) p ^= a;
    const hi = a & 0x80;
    a = (a << 1) & 0xff;
    if (hi) a ^= 0x1b;
    b >>= 1;
  }
  return p;
}
const REF_SBOX: number[] = [];
const REF_INV_SBOX: number[] = [];
for (let x = 0; x < 256; x++) {
  let inv = 0;
  for (let y = 1; y < 256 && x !== 0; y++) {
    if (gmul(x, y) === 1) {
      inv = y;
      break;
    }
  }
  const bit = (v: number, i: number) => (v >> (i % 8)) & 1;
  let s = 0;
  for (let i = 0; i < 8; i++) {
    const b =
      bit(inv, i) ^ bit(inv, i + 4) ^ bit(inv, i + 5) ^ bit(inv, i + 6) ^ bit(inv, i + 7) ^ bit(0x63, i);
    s |= b << i;
  }
  REF_SBOX[x] = s;
}
for (let x = 0; x < 256; x++) REF_INV_SBOX[REF_SBOX[x]!] = x;

/** FIPS-197 KeyExpansion, returned as bytes (word i = bytes 4i..4i+3). */
function refExpand(key: Uint8Array, rounds: number): Uint8Array {
  const nk = key.length / 4;
  const total = 4 * (rounds + 1);
  const w: number[][] = [];
  for (let i = 0; i < nk; i++) w.push([key[4 * i]!, key[4 * i + 1]!, key[4 * i + 2]!, key[4 * i + 3]!]);
  let rcon = 1;
  for (let i = nk; i < total; i++) {
    let temp = [...w[i - 1]!];
    if (i % nk === 0) {
      temp = [temp[1]!, temp[2]!, temp[3]!, temp[0]!].map((b) => REF_SBOX[b]!);
      temp[0]! ^= rcon;
      rcon = gmul(rcon, 2);
    } else if (nk > 6 && i % nk === 4) {
      temp = temp.map((b) => REF_SBOX[b]!);
    }
    w.push(w[i - nk]!.map((b, j) => b ^ temp[j]!));
  }
  return Uint8Array.from(w.flat());
}

function applyTweak(w: Uint8Array, tweak: readonly KeyTweak[]): Uint8Array {
  const out = w.slice();
  for (const t of tweak) out[t.byteOffset]! ^= t.xor;
  return out;
}

function addRoundKey(s: number[], w: Uint8Array, round: number): void {
  for (let i = 0; i < 16; i++) s[i]! ^= w[16 * round + i]!;
}
function shiftRows(s: number[], inverse: boolean): void {
  const t = [...s];
  for (let r = 1; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      const from = inverse ? (c - r + 4) % 4 : (c + r) % 4;
      s[r + 4 * c] = t[r + 4 * from]!;
    }
  }
}
function mixColumns(s: number[], m: readonly number[]): void {
  for (let c = 0; c < 4; c++) {
    const col = s.slice(4 * c, 4 * c + 4);
    for (let r = 0; r < 4; r++) {
      let v = 0;
      for (let k = 0; k < 4; k++) v ^= gmul(m[(k - r + 4) % 4]!, col[k]!);
      s[r + 4 * c] = v;
    }
  }
}
const MIX = [2, 3, 1, 1];
const INV_MIX = [14, 11, 13, 9];

/** FIPS-197 Cipher() over an expanded key given as bytes. */
function refEncrypt(w: Uint8Array, rounds: number, input: Uint8Array): Uint8Array {
  const s = [...input];
  addRoundKey(s, w, 0);
  for (let round = 1; round <= rounds; round++) {
    for (let i = 0; i < 16; i++) s[i] = REF_SBOX[s[i]!]!;
    shiftRows(s, false);
    if (round !== rounds) mixColumns(s, MIX);
    addRoundKey(s, w, round);
  }
  return Uint8Array.from(s);
}

/** FIPS-197 InvCipher() (the straightforward one, not the equivalent inverse cipher). */
function refDecrypt(w: Uint8Array, rounds: number, input: Uint8Array): Uint8Array {
  const s = [...input];
  addRoundKey(s, w, rounds);
  for (let round = rounds - 1; round >= 0; round--) {
    shiftRows(s, true);
    for (let i = 0; i < 16; i++) s[i] = REF_INV_SBOX[s[i]!]!;
    addRoundKey(s, w, round);
    if (round !== 0) mixColumns(s, INV_MIX);
  }
  return Uint8Array.from(s);
}

// -------------------------------------------------------------------------------------------------
// @noble/ciphers' raw AES core (unsafe.encrypt/decrypt) takes an expanded key as little-endian
// Uint32 words and derives the round count from its length, so it runs any schedule we hand it.

function leWords(bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array(bytes.length / 4);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(4 * i, true);
  return out;
}
function nobleBlock(f: typeof nobleAes.encrypt, xk: Uint32Array, block: Uint8Array): Uint8Array {
  const w = leWords(block);
  const { s0, s1, s2, s3 } = f(xk, w[0]!, w[1]!, w[2]!, w[3]!);
  const out = new Uint8Array(16);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, s0, true);
  dv.setUint32(4, s1, true);
  dv.setUint32(8, s2, true);
  dv.setUint32(12, s3, true);
  return out;
}
/** Equivalent-inverse-cipher key for noble's decrypt(), built with the reference InvMixColumns. */
function nobleDecKey(w: Uint8Array, rounds: number): Uint32Array {
  const out = new Uint8Array(w.length);
  for (let r = 0; r <= rounds; r++) {
    const rk = [...w.subarray(16 * (rounds - r), 16 * (rounds - r) + 16)];
    if (r !== 0 && r !== rounds) mixColumns(rk, INV_MIX);
    out.set(rk, 16 * r);
  }
  return leWords(out);
}

// -------------------------------------------------------------------------------------------------

const tweakArb = (rounds: number) =>
  fc.array(
    fc.record({
      byteOffset: fc.integer({ min: 0, max: 16 * (rounds + 1) - 1 }),
      xor: fc.integer({ min: 0, max: 255 }),
    }),
    { maxLength: 6 },
  );
const block = fc.uint8Array({ minLength: 16, maxLength: 16 });
const keyOf = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

describe('known answers', () => {
  it('FIPS-197 C.1 AES-128 (vectors file)', () => {
    const { key, pt, ct } = checks.aes128_fips197_c1;
    const ks = expandKey(fromHex(key));
    expect(ks.rounds).toBe(10);
    expect(hex(enc(ks, fromHex(pt)))).toBe(ct);
    expect(hex(dec(ks, fromHex(ct)))).toBe(pt);
  });

  it('FIPS-197 C.2 AES-192 and C.3 AES-256', () => {
    const pt = fromHex('00112233445566778899aabbccddeeff');
    const k192 = expandKey(fromHex('000102030405060708090a0b0c0d0e0f1011121314151617'));
    expect(k192.rounds).toBe(12);
    expect(hex(enc(k192, pt))).toBe('dda97ca4864cdfe06eaf70a0ec0d7191');
    expect(hex(dec(k192, fromHex('dda97ca4864cdfe06eaf70a0ec0d7191')))).toBe(hex(pt));
    const k256 = expandKey(fromHex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'));
    expect(k256.rounds).toBe(14);
    expect(hex(enc(k256, pt))).toBe('8ea2b7ca516745bfeafc49904b496089');
    expect(hex(dec(k256, fromHex('8ea2b7ca516745bfeafc49904b496089')))).toBe(hex(pt));
  });

  it('FIPS-197 A.1 AES-128 expanded key (last round key)', () => {
    const ks = expandKey(fromHex('2b7e151628aed2a6abf7158809cf4f3c'));
    expect(hex(expandedKeyBytes(ks).subarray(160))).toBe('d014f9a8c9ee2589e13f0cc8b6630ca6');
  });

  it('V4: Rijndael-160 (Nk 5, 11 rounds) of the zero block', () => {
    expect(V4_SCHEDULE.rounds).toBe(11);
    expect(hex(enc(V4_SCHEDULE, ZERO))).toBe(checks.v4_rijndael160_encrypt_zero_block);
  });

  it('V5: AES-128 of the zero block', () => {
    expect(V5_SCHEDULE.rounds).toBe(10);
    expect(hex(enc(V5_SCHEDULE, ZERO))).toBe(checks.v5_aes128_encrypt_zero_block);
    expect(hex(dec(V5_SCHEDULE, fromHex(checks.v5_aes128_encrypt_zero_block)))).toBe(hex(ZERO));
  });

  it('V6: modified AES-128, encrypt and decrypt of the zero block', () => {
    expect(V6_SCHEDULE.rounds).toBe(10);
    expect(hex(enc(V6_SCHEDULE, ZERO))).toBe(checks.v6_modified_aes_encrypt_zero_block);
    expect(hex(dec(V6_SCHEDULE, ZERO))).toBe(checks.v6_modified_aes_decrypt_zero_block);
    expect(hex(dec(V6_SCHEDULE, fromHex(checks.v6_modified_aes_encrypt_zero_block)))).toBe(hex(ZERO));
    expect(hex(enc(V6_SCHEDULE, fromHex(checks.v6_modified_aes_decrypt_zero_block)))).toBe(hex(ZERO));
  });

  it('V6 key without the tweak is plain AES-128 (the contrast value KMS does not use)', () => {
    const contrast = checks['standard_aes128_with_v6_key_zero_block_(NOT_what_KMS_uses)'];
    expect(hex(enc(expandKey(V6_KEY), ZERO))).toBe(contrast);
    expect(hex(enc(V6_SCHEDULE, ZERO))).not.toBe(contrast);
  });

  it('V4 expanded key, 192 bytes, byte for byte', () => {
    const bytes = expandedKeyBytes(V4_SCHEDULE);
    expect(bytes.length).toBe(192);
    expect(hex(bytes)).toBe(checks.v4_expanded_key_192_bytes);
    expect(hex(bytes.subarray(0, 20))).toBe(hex(V4_KEY));
  });

  it('V6 expanded key after the XOR tweak, 176 bytes, byte for byte', () => {
    const bytes = expandedKeyBytes(V6_SCHEDULE);
    expect(bytes.length).toBe(176);
    expect(hex(bytes)).toBe(checks.v6_expanded_key_176_bytes_after_xor);
    // Exactly the three tweaked bytes differ from the plain AES-128 schedule.
    const plain = expandedKeyBytes(expandKey(V6_KEY));
    const diffs = [...bytes].flatMap((b, i) => (b !== plain[i] ? [[i, b ^ plain[i]!]] : []));
    expect(diffs).toEqual([
      [64, 0x73],
      [96, 0x09],
      [128, 0xe4],
    ]);
    expect(V6_TWEAK).toEqual([
      { byteOffset: 64, xor: 0x73 },
      { byteOffset: 96, xor: 0x09 },
      { byteOffset: 128, xor: 0xe4 },
    ]);
  });

  it('V5 schedule is built from V5_KEY', () => {
    expect(hex(expandedKeyBytes(V5_SCHEDULE).subarray(0, 16))).toBe(hex(V5_KEY));
    expect(hex(expandedKeyBytes(V5_SCHEDULE))).toBe(hex(refExpand(V5_KEY, 10)));
  });
});

describe('against node:crypto (standard AES)', () => {
  for (const bits of [128, 192, 256] as const) {
    it(`AES-${bits} ECB encrypt and decrypt match on random keys and blocks`, () => {
      fc.assert(
        fc.property(keyOf(bits / 8), fc.uint8Array({ minLength: 16, maxLength: 64 }), (key, data) => {
          const blocks = data.subarray(0, data.length - (data.length % 16));
          const ks = expandKey(key);
          const c = createCipheriv(`aes-${bits}-ecb`, key, null).setAutoPadding(false);
          const nodeCt = new Uint8Array(Buffer.concat([c.update(blocks), c.final()]));
          const d = createDecipheriv(`aes-${bits}-ecb`, key, null).setAutoPadding(false);
          const nodePt = new Uint8Array(Buffer.concat([d.update(blocks), d.final()]));
          const ours = new Uint8Array(blocks.length);
          const oursDec = new Uint8Array(blocks.length);
          for (let i = 0; i < blocks.length; i += 16) {
            encryptBlock(ks, blocks, i, ours, i);
            decryptBlock(ks, blocks, i, oursDec, i);
          }
          expect(hex(ours)).toBe(hex(nodeCt));
          expect(hex(oursDec)).toBe(hex(nodePt));
        }),
        { numRuns: bits === 128 ? 300 : 100 },
      );
    });
  }
});

describe('round trips', () => {
  for (const len of [16, 20, 24, 28, 32]) {
    it(`decrypt∘encrypt and encrypt∘decrypt are the identity, ${len}-byte keys with random tweaks`, () => {
      const rounds = len / 4 + 6;
      fc.assert(
        fc.property(keyOf(len), tweakArb(rounds), block, (key, tweak, pt) => {
          const ks = expandKey(key, undefined, tweak);
          expect(hex(dec(ks, enc(ks, pt)))).toBe(hex(pt));
          expect(hex(enc(ks, dec(ks, pt)))).toBe(hex(pt));
        }),
        { numRuns: len === 16 || len === 20 ? 300 : 50 },
      );
    });
  }

  it('works for non-default round counts', () => {
    fc.assert(
      fc.property(keyOf(16), fc.integer({ min: 1, max: 30 }), block, (key, rounds, pt) => {
        const ks = expandKey(key, rounds);
        expect(ks.rounds).toBe(rounds);
        expect(expandedKeyBytes(ks).length).toBe(16 * (rounds + 1));
        expect(hex(enc(ks, pt))).toBe(hex(refEncrypt(refExpand(key, rounds), rounds, pt)));
        expect(hex(dec(ks, enc(ks, pt)))).toBe(hex(pt));
      }),
      { numRuns: 100 },
    );
  });
});

describe('against @noble/ciphers raw AES core and the FIPS-197 reference', () => {
  it('the slow reference agrees with FIPS-197 C.1 and with node for AES-128', () => {
    const { key, pt, ct } = checks.aes128_fips197_c1;
    const w = refExpand(fromHex(key), 10);
    expect(hex(refEncrypt(w, 10, fromHex(pt)))).toBe(ct);
    expect(hex(refDecrypt(w, 10, fromHex(ct)))).toBe(pt);
  });

  it('the slow reference and noble reproduce the V4, V6 check values from the vectors file', () => {
    const w4 = refExpand(V4_KEY, 11);
    expect(hex(w4)).toBe(checks.v4_expanded_key_192_bytes);
    expect(hex(refEncrypt(w4, 11, ZERO))).toBe(checks.v4_rijndael160_encrypt_zero_block);
    expect(hex(nobleBlock(nobleAes.encrypt, leWords(w4), ZERO))).toBe(
      checks.v4_rijndael160_encrypt_zero_block,
    );
    const w6 = applyTweak(refExpand(V6_KEY, 10), V6_TWEAK);
    expect(hex(w6)).toBe(checks.v6_expanded_key_176_bytes_after_xor);
    expect(hex(refEncrypt(w6, 10, ZERO))).toBe(checks.v6_modified_aes_encrypt_zero_block);
    expect(hex(refDecrypt(w6, 10, ZERO))).toBe(checks.v6_modified_aes_decrypt_zero_block);
    expect(hex(nobleBlock(nobleAes.decrypt, nobleDecKey(w6, 10), ZERO))).toBe(
      checks.v6_modified_aes_decrypt_zero_block,
    );
  });

  it('V4 schedule: encryption matches noble on its expanded key, and the reference', () => {
    const xk = leWords(expandedKeyBytes(V4_SCHEDULE));
    expect(xk.length).toBe(48);
    const w = refExpand(V4_KEY, 11);
    fc.assert(
      fc.property(block, (pt) => {
        const ours = hex(enc(V4_SCHEDULE, pt));
        expect(ours).toBe(hex(nobleBlock(nobleAes.encrypt, xk, pt)));
        expect(ours).toBe(hex(refEncrypt(w, 11, pt)));
      }),
      { numRuns: 300 },
    );
  });

  it('V6 schedule: encryption and decryption match noble and the straightforward inverse cipher', () => {
    const w = expandedKeyBytes(V6_SCHEDULE);
    const xk = leWords(w);
    const xkDec = nobleDecKey(w, 10);
    fc.assert(
      fc.property(block, (pt) => {
        const e = hex(enc(V6_SCHEDULE, pt));
        expect(e).toBe(hex(nobleBlock(nobleAes.encrypt, xk, pt)));
        expect(e).toBe(hex(refEncrypt(w, 10, pt)));
        const d = hex(dec(V6_SCHEDULE, pt));
        expect(d).toBe(hex(nobleBlock(nobleAes.decrypt, xkDec, pt)));
        expect(d).toBe(hex(refDecrypt(w, 10, pt)));
      }),
      { numRuns: 300 },
    );
  });

  it('random 20-byte keys (Nk 5) and random tweaks: expansion, encryption, decryption', () => {
    fc.assert(
      fc.property(keyOf(20), tweakArb(11), block, (key, tweak, pt) => {
        const ks = expandKey(key, undefined, tweak);
        expect(ks.rounds).toBe(11);
        const w = applyTweak(refExpand(key, 11), tweak);
        expect(hex(expandedKeyBytes(ks))).toBe(hex(w));
        expect(hex(enc(ks, pt))).toBe(hex(nobleBlock(nobleAes.encrypt, leWords(w), pt)));
        expect(hex(dec(ks, pt))).toBe(hex(refDecrypt(w, 11, pt)));
      }),
      { numRuns: 200 },
    );
  });

  it('random 16..32-byte keys with random tweaks: decryption of tweaked schedules is the true inverse', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 20, 24, 28, 32).chain((n) => fc.tuple(keyOf(n), tweakArb(n / 4 + 6))),
        block,
        ([key, tweak], pt) => {
          const ks = expandKey(key, undefined, tweak);
          const w = applyTweak(refExpand(key, ks.rounds), tweak);
          expect(hex(expandedKeyBytes(ks))).toBe(hex(w));
          expect(hex(enc(ks, pt))).toBe(hex(refEncrypt(w, ks.rounds, pt)));
          expect(hex(dec(ks, pt))).toBe(hex(refDecrypt(w, ks.rounds, pt)));
          expect(hex(dec(ks, pt))).toBe(hex(nobleBlock(nobleAes.decrypt, nobleDecKey(w, ks.rounds), pt)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a tweak is applied after expansion, not fed back into later round keys', () => {
    const plain = expandedKeyBytes(expandKey(V6_KEY));
    const tweaked = expandedKeyBytes(expandKey(V6_KEY, 10, [{ byteOffset: 64, xor: 0x73 }]));
    for (let i = 0; i < plain.length; i++) expect(tweaked[i]).toBe(i === 64 ? plain[i]! ^ 0x73 : plain[i]);
  });
});

describe('buffers and offsets', () => {
  it('src and dst may alias (same array, same offset)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 40, maxLength: 40 }),
        fc.integer({ min: 0, max: 24 }),
        (buf, off) => {
          const pt = buf.slice(off, off + 16);
          const expected = enc(V6_SCHEDULE, pt);
          const b = buf.slice();
          encryptBlock(V6_SCHEDULE, b, off, b, off);
          expect(hex(b.subarray(off, off + 16))).toBe(hex(expected));
          expect(hex(b.subarray(0, off))).toBe(hex(buf.subarray(0, off)));
          expect(hex(b.subarray(off + 16))).toBe(hex(buf.subarray(off + 16)));
          decryptBlock(V6_SCHEDULE, b, off, b, off);
          expect(hex(b)).toBe(hex(buf));
        },
      ),
    );
  });

  it('src and dst may overlap at different offsets (the whole block is read first)', () => {
    const buf = Uint8Array.from({ length: 32 }, (_, i) => i);
    const expected = enc(V5_SCHEDULE, buf.subarray(0, 16));
    encryptBlock(V5_SCHEDULE, buf, 0, buf, 5);
    expect(hex(buf.subarray(5, 21))).toBe(hex(expected));
  });

  it('honours subarray views (byteOffset)', () => {
    const backing = new Uint8Array(64);
    backing.set(fromHex(checks.aes128_fips197_c1.pt), 33);
    const view = backing.subarray(17);
    const out = new Uint8Array(48).subarray(7);
    encryptBlock(expandKey(fromHex(checks.aes128_fips197_c1.key)), view, 16, out, 3);
    expect(hex(out.subarray(3, 19))).toBe(checks.aes128_fips197_c1.ct);
  });

  it('rejects blocks that do not fit', () => {
    const b = new Uint8Array(20);
    expect(() => encryptBlock(V5_SCHEDULE, b, 5, b, 0)).toThrow(RangeError);
    expect(() => encryptBlock(V5_SCHEDULE, b, 0, b, 5)).toThrow(RangeError);
    expect(() => decryptBlock(V5_SCHEDULE, b, -1, b, 0)).toThrow(RangeError);
    expect(() => decryptBlock(V5_SCHEDULE, b, 0.5, b, 0)).toThrow(RangeError);
    expect(() => encryptBlock(V5_SCHEDULE, b, Number.NaN, b, 0)).toThrow(RangeError);
    expect(() => encryptBlock(V5_SCHEDULE, b, 4, b, 4)).not.toThrow();
  });
});

describe('expandKey argument checks', () => {
  it('rejects bad key lengths, round counts and tweaks', () => {
    for (const n of [0, 8, 15, 17, 36]) expect(() => expandKey(new Uint8Array(n))).toThrow(RangeError);
    expect(() => expandKey(new Uint8Array(16), 0)).toThrow(RangeError);
    expect(() => expandKey(new Uint8Array(16), 31)).toThrow(RangeError);
    expect(() => expandKey(new Uint8Array(16), 2.5)).toThrow(RangeError);
    expect(() => expandKey(new Uint8Array(16), 10, [{ byteOffset: 176, xor: 1 }])).toThrow(RangeError);
    expect(() => expandKey(new Uint8Array(16), 10, [{ byteOffset: -1, xor: 1 }])).toThrow(RangeError);
    expect(() => expandKey(new Uint8Array(16), 10, [{ byteOffset: 0, xor: 256 }])).toThrow(RangeError);
    expect(() => expandKey(new Uint8Array(16), 10, [{ byteOffset: 175, xor: 255 }])).not.toThrow();
  });

  it('does not modify the key it is given', () => {
    const key = V6_KEY.slice();
    expandKey(key, 10, V6_TWEAK);
    expect(hex(key)).toBe(hex(V6_KEY));
  });
});
