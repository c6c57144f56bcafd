/**
 * Little-endian integers read and written at an offset, and a comparison of two byte runs: unchecked
 * helpers for code that bounded its region first (the hot encoders and the answer checks). Anything
 * that reads untrusted lengths goes through `Reader`, which checks every read.
 */

export function u16le(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8);
}

export function u32le(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

/** Writes `v` as a u16 at `p` (a Uint8Array store keeps the low 8 bits); returns `p + 2`. */
export function putU16le(b: Uint8Array, p: number, v: number): number {
  b[p] = v;
  b[p + 1] = v >>> 8;
  return p + 2;
}

/** Writes `v` as a u32 at `p`; returns `p + 4`. */
export function putU32le(b: Uint8Array, p: number, v: number): number {
  b[p] = v;
  b[p + 1] = v >>> 8;
  b[p + 2] = v >>> 16;
  b[p + 3] = v >>> 24;
  return p + 4;
}

/**
 * Whether `a[ai..ai+n)` equals `b[bi..bi+n)`, reading every byte whatever differs (MACs and the
 * values an answer must echo).
 */
export function equalAt(a: Uint8Array, ai: number, b: Uint8Array, bi: number, n: number): boolean {
  let d = 0;
  for (let i = 0; i < n; i++) d |= a[ai + i]! ^ b[bi + i]!;
  return d === 0;
}
