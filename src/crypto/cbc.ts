import { ProtocolError } from '../wire/errors.js';
import { cbcDecryptRegion, cbcEncryptRegion, type KeySchedule } from './aes.js';

/**
 * CBC mode over any KeySchedule from aes.ts (spec c.4–c.6, d.3), and PKCS#7 padding.
 *
 * The `*Into` variants work on a region of a larger buffer, so the KMS layer can decrypt or encrypt a
 * message in place (src and dst the same array at the same offset) without copying. Source and
 * destination regions must be either identical or disjoint.
 *
 * A data length that is not a whole number of blocks comes from the wire, so it is a ProtocolError
 * ('BAD_MESSAGE'). A wrong IV length or an out-of-range offset is a caller bug: RangeError.
 */

function checkArgs(
  iv: Uint8Array,
  src: Uint8Array,
  srcOff: number,
  len: number,
  dst: Uint8Array,
  dstOff: number,
) {
  if (iv.length !== 16) throw new RangeError(`CBC IV must be 16 bytes, got ${iv.length}`);
  if (len % 16 !== 0) {
    throw new ProtocolError('BAD_MESSAGE', `CBC data length ${len} is not a multiple of 16`, {
      field: 'ciphertext',
      offset: srcOff,
      available: len,
    });
  }
  if (!(len >= 0 && srcOff >= 0 && srcOff + len <= src.length && dstOff >= 0 && dstOff + len <= dst.length)) {
    throw new RangeError(
      `CBC region out of range: ${len} bytes from src[${srcOff}] (${src.length}) to dst[${dstOff}] (${dst.length})`,
    );
  }
}

/** CBC-encrypts `len` bytes of `src` from `srcOff` into `dst` at `dstOff`. In place is fine. */
export function cbcEncryptInto(
  ks: KeySchedule,
  iv: Uint8Array,
  src: Uint8Array,
  srcOff: number,
  len: number,
  dst: Uint8Array,
  dstOff: number,
): void {
  checkArgs(iv, src, srcOff, len, dst, dstOff);
  cbcEncryptRegion(ks, iv, 0, src, srcOff, len, dst, dstOff);
}

/**
 * CBC-decrypts `len` bytes of `src` from `srcOff` into `dst` at `dstOff`. In place is fine: each
 * ciphertext block is read (and kept as the next block's chaining value) before its plaintext is
 * written. The IV may lie in the same buffer as long as it is outside the destination region.
 */
export function cbcDecryptInto(
  ks: KeySchedule,
  iv: Uint8Array,
  src: Uint8Array,
  srcOff: number,
  len: number,
  dst: Uint8Array,
  dstOff: number,
): void {
  checkArgs(iv, src, srcOff, len, dst, dstOff);
  cbcDecryptRegion(ks, iv, 0, src, srcOff, len, dst, dstOff);
}

/** CBC-encrypts `data` (a multiple of 16 bytes, no padding added) into a new array. */
export function cbcEncrypt(ks: KeySchedule, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  cbcEncryptInto(ks, iv, data, 0, data.length, out, 0);
  return out;
}

/** CBC-decrypts `data` (a multiple of 16 bytes, padding left in place) into a new array. */
export function cbcDecrypt(ks: KeySchedule, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  cbcDecryptInto(ks, iv, data, 0, data.length, out, 0);
  return out;
}

/** Number of PKCS#7 pad bytes for a `len`-byte message: always 1..16 (spec d.3). */
export function pkcs7PadLength(len: number): number {
  return 16 - (len % 16);
}

/** `data` followed by its PKCS#7 padding (1..16 bytes of value n), as a new array. */
export function pkcs7Pad(data: Uint8Array): Uint8Array {
  const n = pkcs7PadLength(data.length);
  const out = new Uint8Array(data.length + n);
  out.set(data);
  out.fill(n, data.length);
  return out;
}

/**
 * The message without its PKCS#7 padding (a view, not a copy). Throws ProtocolError 'BAD_PADDING' unless
 * `data` is a non-empty multiple of 16 bytes ending in n bytes of value n, 1 ≤ n ≤ 16.
 */
export function pkcs7Unpad(data: Uint8Array): Uint8Array {
  const len = data.length;
  const n = len === 0 ? 0 : data[len - 1]!;
  let ok = len % 16 === 0 && n >= 1 && n <= 16 && n <= len;
  for (let i = len - n; ok && i < len; i++) ok = data[i] === n;
  if (!ok) {
    throw new ProtocolError('BAD_PADDING', `bad PKCS#7 padding (length ${len}, last byte ${n})`, {
      field: 'padding',
      offset: Math.max(0, len - 1),
    });
  }
  return data.subarray(0, len - n);
}
