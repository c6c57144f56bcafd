import { ProtocolError } from './errors.js';

/**
 * Decodes UTF-16LE code units up to the first NUL (or the end), at most `maxUnits` units. Lone
 * surrogates are kept as U+FFFD by TextDecoder, never a throw.
 */
const decoder = new TextDecoder('utf-16le');

export function decodeUtf16z(b: Uint8Array, maxUnits = b.length >> 1): string {
  const units = Math.min(maxUnits, b.length >> 1);
  let n = 0;
  while (n < units && (b[2 * n] !== 0 || b[2 * n + 1] !== 0)) n++;
  // Fast path for short names without surrogates or a leading BOM (which TextDecoder would drop): the
  // code units are the string. Anything else goes through TextDecoder, which defines the result.
  if (n <= SHORT_UNITS && n > 0) {
    const codes = UNIT_BUFFERS[n]!;
    let plain = true;
    for (let i = 0; i < n; i++) {
      const c = b[2 * i]! | (b[2 * i + 1]! << 8);
      if ((c & 0xf800) === 0xd800) {
        plain = false;
        break;
      }
      codes[i] = c;
    }
    if (plain && codes[0] !== 0xfeff) return String.fromCharCode.apply(null, codes);
  }
  return decoder.decode(b.subarray(0, 2 * n));
}

/** Reused code-unit arrays by length for decodeUtf16z's fast path (workstation names: ≤ 64 units). */
const SHORT_UNITS = 64;
const UNIT_BUFFERS: number[][] = Array.from({ length: SHORT_UNITS + 1 }, (_, n) =>
  new Array<number>(n).fill(0),
);

/** Encodes to UTF-16LE without terminator. */
export function encodeUtf16(s: string): Uint8Array {
  const out = new Uint8Array(s.length * 2);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out[2 * i] = c & 0xff;
    out[2 * i + 1] = c >>> 8;
  }
  return out;
}

/** Encodes into a fixed-size zero-padded field, NUL terminated; throws BAD_VALUE if it cannot fit. */
export function encodeUtf16Fixed(s: string, units: number, field: string): Uint8Array {
  if (s.length > units - 1) {
    throw new ProtocolError('BAD_VALUE', `${field}: ${s.length} UTF-16 units, at most ${units - 1} fit`, {
      field,
    });
  }
  const out = new Uint8Array(units * 2);
  out.set(encodeUtf16(s));
  return out;
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new ProtocolError('BAD_VALUE', `not hex: ${s.slice(0, 40)}`);
  return new Uint8Array(Buffer.from(s, 'hex'));
}
