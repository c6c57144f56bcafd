/**
 * A small parameterised Rijndael with a 128-bit block (spec d.0, d.1, d.4), written from FIPS-197.
 *
 * - Key length 16, 20, 24, 28 or 32 bytes (Nk = 4..8). Nk = 5 is the V4 variant (spec d.1); Nk = 4 is
 *   AES-128 (V5, and V6 before its tweak).
 * - The round count defaults to Nk + 6 and may be overridden.
 * - Optional byte tweaks are XORed into the expanded key after expansion (V6, spec d.4). They are not fed
 *   back into the expansion, and the decryption schedule is derived from the tweaked keys.
 *
 * Implementation: 32-bit T-tables built once at module load. State columns and round keys are held as
 * big-endian words (the first byte of a column is the most significant byte), so the expanded-key words
 * read in FIPS-197 byte order. Decryption uses the equivalent inverse cipher (FIPS-197 5.3.5): round keys
 * in reverse order, with InvMixColumns applied to the middle ones.
 *
 * Sans-io and allocation-free per block. Block functions read the whole input block before writing, so
 * `src` and `dst` may be the same array (even at the same offset).
 */

export interface KeyTweak {
  /** Offset into the expanded key bytes (FIPS-197 byte order), 0 ≤ byteOffset < 16 × (rounds + 1). */
  byteOffset: number;
  /** Byte value XORed in, 0..255. */
  xor: number;
}

export interface KeySchedule {
  readonly rounds: number;
  /** Encryption round keys, 4 × (rounds + 1) big-endian words, tweaks applied. */
  readonly enc: Uint32Array;
  /** Equivalent-inverse-cipher round keys: `enc` reversed by round, InvMixColumns on rounds 1..Nr-1. */
  readonly dec: Uint32Array;
}

// ---------------------------------------------------------------------------------------------------
// Tables (built once).

/** Multiplication by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1. */
function xtime(a: number): number {
  return ((a << 1) ^ (a & 0x80 ? 0x1b : 0)) & 0xff;
}

const SBOX = new Uint8Array(256);
const INV_SBOX = new Uint8Array(256);
const Te0 = new Uint32Array(256);
const Te1 = new Uint32Array(256);
const Te2 = new Uint32Array(256);
const Te3 = new Uint32Array(256);
const Td0 = new Uint32Array(256);
const Td1 = new Uint32Array(256);
const Td2 = new Uint32Array(256);
const Td3 = new Uint32Array(256);
/** Rcon[i] for i = 1..: x^(i-1) in GF(2^8). Index 0 is unused. Enough for any Nk ≥ 4 up to 30 rounds. */
const RCON = new Uint8Array(32);

function rotr8(w: number): number {
  return ((w >>> 8) | (w << 24)) >>> 0;
}

(function buildTables(): void {
  // exp/log tables over the generator 3 (x + 1).
  const exp = new Uint8Array(256);
  const log = new Uint8Array(256);
  let v = 1;
  for (let i = 0; i < 255; i++) {
    exp[i] = v;
    log[v] = i;
    v ^= xtime(v); // v *= 3
  }
  const mul = (a: number, b: number): number => (a === 0 || b === 0 ? 0 : exp[(log[a]! + log[b]!) % 255]!);

  for (let x = 0; x < 256; x++) {
    // Multiplicative inverse (0 maps to 0), then the FIPS-197 affine transform.
    const inv = x === 0 ? 0 : exp[(255 - log[x]!) % 255]!;
    let s = inv;
    for (let r = 1; r <= 4; r++) s ^= ((inv << r) | (inv >>> (8 - r))) & 0xff;
    s ^= 0x63;
    SBOX[x] = s;
    INV_SBOX[s] = x;
  }

  for (let x = 0; x < 256; x++) {
    const s = SBOX[x]!;
    // MixColumns column (2s, s, s, 3s), first byte most significant.
    const e = ((mul(s, 2) << 24) | (s << 16) | (s << 8) | mul(s, 3)) >>> 0;
    Te0[x] = e;
    Te1[x] = rotr8(e);
    Te2[x] = rotr8(rotr8(e));
    Te3[x] = rotr8(rotr8(rotr8(e)));
    const t = INV_SBOX[x]!;
    // InvMixColumns column (14t, 9t, 13t, 11t).
    const d = ((mul(t, 14) << 24) | (mul(t, 9) << 16) | (mul(t, 13) << 8) | mul(t, 11)) >>> 0;
    Td0[x] = d;
    Td1[x] = rotr8(d);
    Td2[x] = rotr8(rotr8(d));
    Td3[x] = rotr8(rotr8(rotr8(d)));
  }

  let r = 1;
  for (let i = 1; i < RCON.length; i++) {
    RCON[i] = r;
    r = xtime(r);
  }
})();

function subWord(w: number): number {
  return (
    ((SBOX[w >>> 24]! << 24) |
      (SBOX[(w >>> 16) & 0xff]! << 16) |
      (SBOX[(w >>> 8) & 0xff]! << 8) |
      SBOX[w & 0xff]!) >>>
    0
  );
}

// ---------------------------------------------------------------------------------------------------
// Key schedule.

/**
 * Expands `key` (16, 20, 24, 28 or 32 bytes) into a schedule for `rounds` rounds (default Nk + 6), then
 * XORs each tweak into the expanded key bytes. Throws RangeError on a bad key length, round count or
 * tweak (these are programming errors: the keys are constants).
 */
export function expandKey(key: Uint8Array, rounds?: number, tweak: readonly KeyTweak[] = []): KeySchedule {
  const len = key.length;
  if (len % 4 !== 0 || len < 16 || len > 32) {
    throw new RangeError(`Rijndael key must be 16, 20, 24, 28 or 32 bytes, got ${len}`);
  }
  const nk = len >>> 2;
  const nr = rounds ?? nk + 6;
  if (!Number.isInteger(nr) || nr < 1 || nr > 30) {
    throw new RangeError(`Rijndael round count must be an integer in 1..30, got ${nr}`);
  }
  const words = 4 * (nr + 1);
  const enc = new Uint32Array(words);
  for (let i = 0; i < nk && i < words; i++) {
    enc[i] = ((key[4 * i]! << 24) | (key[4 * i + 1]! << 16) | (key[4 * i + 2]! << 8) | key[4 * i + 3]!) >>> 0;
  }
  for (let i = nk; i < words; i++) {
    let temp = enc[i - 1]!;
    if (i % nk === 0) {
      // RotWord then SubWord, then XOR Rcon into the first (most significant) byte.
      temp = (subWord(((temp << 8) | (temp >>> 24)) >>> 0) ^ (RCON[i / nk]! << 24)) >>> 0;
    } else if (nk > 6 && i % nk === 4) {
      temp = subWord(temp);
    }
    enc[i] = (enc[i - nk]! ^ temp) >>> 0;
  }

  for (const { byteOffset, xor } of tweak) {
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset >= 4 * words) {
      throw new RangeError(`key tweak offset ${byteOffset} outside the ${4 * words}-byte expanded key`);
    }
    if (!Number.isInteger(xor) || xor < 0 || xor > 0xff) {
      throw new RangeError(`key tweak value ${xor} is not a byte`);
    }
    const w = byteOffset >>> 2;
    enc[w] = (enc[w]! ^ (xor << (24 - 8 * (byteOffset & 3)))) >>> 0;
  }

  // Equivalent inverse cipher: reverse the round order; InvMixColumns on every round key but the first
  // and last. Derived from the tweaked `enc`, so the tweak is honoured when decrypting (spec d.4).
  const dec = new Uint32Array(words);
  for (let r = 0; r <= nr; r++) {
    const from = 4 * (nr - r);
    const to = 4 * r;
    for (let c = 0; c < 4; c++) {
      const w = enc[from + c]!;
      dec[to + c] =
        r === 0 || r === nr
          ? w
          : (Td0[SBOX[w >>> 24]!]! ^
              Td1[SBOX[(w >>> 16) & 0xff]!]! ^
              Td2[SBOX[(w >>> 8) & 0xff]!]! ^
              Td3[SBOX[w & 0xff]!]!) >>>
            0;
    }
  }
  return { rounds: nr, enc, dec };
}

/** The 16 × (rounds + 1) expanded key bytes (tweaks applied), FIPS-197 byte order. */
export function expandedKeyBytes(ks: KeySchedule): Uint8Array {
  const out = new Uint8Array(ks.enc.length * 4);
  for (let i = 0; i < ks.enc.length; i++) {
    const w = ks.enc[i]!;
    out[4 * i] = w >>> 24;
    out[4 * i + 1] = w >>> 16;
    out[4 * i + 2] = w >>> 8;
    out[4 * i + 3] = w;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Block operations.

function checkBlock(buf: Uint8Array, off: number, what: string): void {
  // `!(a <= b)` also rejects NaN offsets.
  if (!(off >= 0 && off + 16 <= buf.length) || (off | 0) !== off) {
    throw new RangeError(`${what}: a 16-byte block at offset ${off} does not fit in ${buf.length} bytes`);
  }
}

/** Encrypts the 16 bytes at `src[srcOff]` into `dst[dstOff]`. `src` and `dst` may alias. */
export function encryptBlock(
  ks: KeySchedule,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
): void {
  checkBlock(src, srcOff, 'encryptBlock src');
  checkBlock(dst, dstOff, 'encryptBlock dst');
  encryptWords(
    ks.enc,
    ks.rounds,
    readWord(src, srcOff),
    readWord(src, srcOff + 4),
    readWord(src, srcOff + 8),
    readWord(src, srcOff + 12),
  );
  writeBlock(dst, dstOff, OUT[0]!, OUT[1]!, OUT[2]!, OUT[3]!);
}

/** Decrypts the 16 bytes at `src[srcOff]` into `dst[dstOff]`. `src` and `dst` may alias. */
export function decryptBlock(
  ks: KeySchedule,
  src: Uint8Array,
  srcOff: number,
  dst: Uint8Array,
  dstOff: number,
): void {
  checkBlock(src, srcOff, 'decryptBlock src');
  checkBlock(dst, dstOff, 'decryptBlock dst');
  decryptWords(
    ks.dec,
    ks.rounds,
    readWord(src, srcOff),
    readWord(src, srcOff + 4),
    readWord(src, srcOff + 8),
    readWord(src, srcOff + 12),
  );
  writeBlock(dst, dstOff, OUT[0]!, OUT[1]!, OUT[2]!, OUT[3]!);
}

// ---------------------------------------------------------------------------------------------------
// Multi-block primitives for cbc.ts and v4-mac.ts. They skip the per-block argument checks (their
// callers check whole regions once) and keep the chaining value in 32-bit words instead of XORing byte
// by byte, which makes CBC about twice as fast as calling encryptBlock / decryptBlock per block.
// encryptWords / decryptWords are the only round bodies: the single-block functions above call them too.

/** Output of encryptWords / decryptWords (one block as four big-endian words). */
const OUT = new Int32Array(4);

function readWord(b: Uint8Array, i: number): number {
  return (b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!;
}

/** Encrypts the block (s0, s1, s2, s3) (plain words, round key 0 not yet added) into OUT. */
function encryptWords(rk: Uint32Array, rounds: number, s0: number, s1: number, s2: number, s3: number): void {
  s0 ^= rk[0]!;
  s1 ^= rk[1]!;
  s2 ^= rk[2]!;
  s3 ^= rk[3]!;
  let k = 4;
  for (let r = rounds - 1; r > 0; r--) {
    const t0 =
      Te0[s0 >>> 24]! ^ Te1[(s1 >>> 16) & 0xff]! ^ Te2[(s2 >>> 8) & 0xff]! ^ Te3[s3 & 0xff]! ^ rk[k]!;
    const t1 =
      Te0[s1 >>> 24]! ^ Te1[(s2 >>> 16) & 0xff]! ^ Te2[(s3 >>> 8) & 0xff]! ^ Te3[s0 & 0xff]! ^ rk[k + 1]!;
    const t2 =
      Te0[s2 >>> 24]! ^ Te1[(s3 >>> 16) & 0xff]! ^ Te2[(s0 >>> 8) & 0xff]! ^ Te3[s1 & 0xff]! ^ rk[k + 2]!;
    const t3 =
      Te0[s3 >>> 24]! ^ Te1[(s0 >>> 16) & 0xff]! ^ Te2[(s1 >>> 8) & 0xff]! ^ Te3[s2 & 0xff]! ^ rk[k + 3]!;
    s0 = t0;
    s1 = t1;
    s2 = t2;
    s3 = t3;
    k += 4;
  }
  OUT[0] =
    ((SBOX[s0 >>> 24]! << 24) |
      (SBOX[(s1 >>> 16) & 0xff]! << 16) |
      (SBOX[(s2 >>> 8) & 0xff]! << 8) |
      SBOX[s3 & 0xff]!) ^
    rk[k]!;
  OUT[1] =
    ((SBOX[s1 >>> 24]! << 24) |
      (SBOX[(s2 >>> 16) & 0xff]! << 16) |
      (SBOX[(s3 >>> 8) & 0xff]! << 8) |
      SBOX[s0 & 0xff]!) ^
    rk[k + 1]!;
  OUT[2] =
    ((SBOX[s2 >>> 24]! << 24) |
      (SBOX[(s3 >>> 16) & 0xff]! << 16) |
      (SBOX[(s0 >>> 8) & 0xff]! << 8) |
      SBOX[s1 & 0xff]!) ^
    rk[k + 2]!;
  OUT[3] =
    ((SBOX[s3 >>> 24]! << 24) |
      (SBOX[(s0 >>> 16) & 0xff]! << 16) |
      (SBOX[(s1 >>> 8) & 0xff]! << 8) |
      SBOX[s2 & 0xff]!) ^
    rk[k + 3]!;
}

/** Decrypts the block (s0, s1, s2, s3) (cipher words) into OUT, with the `dec` schedule. */
function decryptWords(rk: Uint32Array, rounds: number, s0: number, s1: number, s2: number, s3: number): void {
  s0 ^= rk[0]!;
  s1 ^= rk[1]!;
  s2 ^= rk[2]!;
  s3 ^= rk[3]!;
  let k = 4;
  for (let r = rounds - 1; r > 0; r--) {
    const t0 =
      Td0[s0 >>> 24]! ^ Td1[(s3 >>> 16) & 0xff]! ^ Td2[(s2 >>> 8) & 0xff]! ^ Td3[s1 & 0xff]! ^ rk[k]!;
    const t1 =
      Td0[s1 >>> 24]! ^ Td1[(s0 >>> 16) & 0xff]! ^ Td2[(s3 >>> 8) & 0xff]! ^ Td3[s2 & 0xff]! ^ rk[k + 1]!;
    const t2 =
      Td0[s2 >>> 24]! ^ Td1[(s1 >>> 16) & 0xff]! ^ Td2[(s0 >>> 8) & 0xff]! ^ Td3[s3 & 0xff]! ^ rk[k + 2]!;
    const t3 =
      Td0[s3 >>> 24]! ^ Td1[(s2 >>> 16) & 0xff]! ^ Td2[(s1 >>> 8) & 0xff]! ^ Td3[s0 & 0xff]! ^ rk[k + 3]!;
    s0 = t0;
    s1 = t1;
    s2 = t2;
    s3 = t3;
    k += 4;
  }
  OUT[0] =
    ((INV_SBOX[s0 >>> 24]! << 24) |
      (INV_SBOX[(s3 >>> 16) & 0xff]! << 16) |
      (INV_SBOX[(s2 >>> 8) & 0xff]! << 8) |
      INV_SBOX[s1 & 0xff]!) ^
    rk[k]!;
  OUT[1] =
    ((INV_SBOX[s1 >>> 24]! << 24) |
      (INV_SBOX[(s0 >>> 16) & 0xff]! << 16) |
      (INV_SBOX[(s3 >>> 8) & 0xff]! << 8) |
      INV_SBOX[s2 & 0xff]!) ^
    rk[k + 1]!;
  OUT[2] =
    ((INV_SBOX[s2 >>> 24]! << 24) |
      (INV_SBOX[(s1 >>> 16) & 0xff]! << 16) |
      (INV_SBOX[(s0 >>> 8) & 0xff]! << 8) |
      INV_SBOX[s3 & 0xff]!) ^
    rk[k + 2]!;
  OUT[3] =
    ((INV_SBOX[s3 >>> 24]! << 24) |
      (INV_SBOX[(s2 >>> 16) & 0xff]! << 16) |
      (INV_SBOX[(s1 >>> 8) & 0xff]! << 8) |
      INV_SBOX[s0 & 0xff]!) ^
    rk[k + 3]!;
}

/**
 * CBC encryption of `len` bytes (a multiple of 16) from `src[srcOff]` to `dst[dstOff]`, chaining from
 * the 16 bytes at `iv[ivOff]`. Unchecked: the caller validates the regions. In place is fine; so is an
 * IV that lies in `dst` before `dstOff`.
 */
export function cbcEncryptRegion(
  ks: KeySchedule,
  iv: Uint8Array,
  ivOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
  dst: Uint8Array,
  dstOff: number,
): void {
  const rk = ks.enc;
  const nr = ks.rounds;
  let c0 = readWord(iv, ivOff);
  let c1 = readWord(iv, ivOff + 4);
  let c2 = readWord(iv, ivOff + 8);
  let c3 = readWord(iv, ivOff + 12);
  for (let i = 0; i < len; i += 16) {
    const s = srcOff + i;
    encryptWords(
      rk,
      nr,
      readWord(src, s) ^ c0,
      readWord(src, s + 4) ^ c1,
      readWord(src, s + 8) ^ c2,
      readWord(src, s + 12) ^ c3,
    );
    c0 = OUT[0]!;
    c1 = OUT[1]!;
    c2 = OUT[2]!;
    c3 = OUT[3]!;
    writeBlock(dst, dstOff + i, c0, c1, c2, c3);
  }
}

/**
 * CBC decryption, the counterpart of cbcEncryptRegion (same contract). Blocks are processed first to
 * last with the previous ciphertext block kept in registers, so decrypting in place is fine.
 */
export function cbcDecryptRegion(
  ks: KeySchedule,
  iv: Uint8Array,
  ivOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
  dst: Uint8Array,
  dstOff: number,
): void {
  const rk = ks.dec;
  const nr = ks.rounds;
  let p0 = readWord(iv, ivOff);
  let p1 = readWord(iv, ivOff + 4);
  let p2 = readWord(iv, ivOff + 8);
  let p3 = readWord(iv, ivOff + 12);
  for (let i = 0; i < len; i += 16) {
    const s = srcOff + i;
    const c0 = readWord(src, s);
    const c1 = readWord(src, s + 4);
    const c2 = readWord(src, s + 8);
    const c3 = readWord(src, s + 12);
    decryptWords(rk, nr, c0, c1, c2, c3);
    writeBlock(dst, dstOff + i, OUT[0]! ^ p0, OUT[1]! ^ p1, OUT[2]! ^ p2, OUT[3]! ^ p3);
    p0 = c0;
    p1 = c1;
    p2 = c2;
    p3 = c3;
  }
}

/**
 * CBC-MAC state update: mac = E(mac ⊕ block) over the `len` bytes (a multiple of 16) at `src[srcOff]`,
 * the 16-byte `mac` updated in place. Unchecked, like the region functions.
 */
export function cbcMacRegion(
  ks: KeySchedule,
  mac: Uint8Array,
  src: Uint8Array,
  srcOff: number,
  len: number,
): void {
  const rk = ks.enc;
  const nr = ks.rounds;
  let c0 = readWord(mac, 0);
  let c1 = readWord(mac, 4);
  let c2 = readWord(mac, 8);
  let c3 = readWord(mac, 12);
  for (let i = 0; i < len; i += 16) {
    const s = srcOff + i;
    encryptWords(
      rk,
      nr,
      readWord(src, s) ^ c0,
      readWord(src, s + 4) ^ c1,
      readWord(src, s + 8) ^ c2,
      readWord(src, s + 12) ^ c3,
    );
    c0 = OUT[0]!;
    c1 = OUT[1]!;
    c2 = OUT[2]!;
    c3 = OUT[3]!;
  }
  writeBlock(mac, 0, c0, c1, c2, c3);
}

function writeBlock(dst: Uint8Array, off: number, w0: number, w1: number, w2: number, w3: number): void {
  // Uint8Array stores keep the low 8 bits, so no masking is needed.
  dst[off] = w0 >>> 24;
  dst[off + 1] = w0 >>> 16;
  dst[off + 2] = w0 >>> 8;
  dst[off + 3] = w0;
  dst[off + 4] = w1 >>> 24;
  dst[off + 5] = w1 >>> 16;
  dst[off + 6] = w1 >>> 8;
  dst[off + 7] = w1;
  dst[off + 8] = w2 >>> 24;
  dst[off + 9] = w2 >>> 16;
  dst[off + 10] = w2 >>> 8;
  dst[off + 11] = w2;
  dst[off + 12] = w3 >>> 24;
  dst[off + 13] = w3 >>> 16;
  dst[off + 14] = w3 >>> 8;
  dst[off + 15] = w3;
}
