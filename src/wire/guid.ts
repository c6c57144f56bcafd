import { ProtocolError } from './errors.js';
import type { Reader } from './reader.js';
import type { Writer } from './writer.js';

/** A GUID as its canonical lower-case string, e.g. `51c82175-844e-4750-b0d8-ec255555bc06`. */
export type Guid = string;

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export const NIL_GUID: Guid = '00000000-0000-0000-0000-000000000000';

export function isGuid(s: string): boolean {
  return GUID_RE.test(s);
}

/** Normalises user input (any case, optional braces) to the canonical form, or throws BAD_VALUE. */
export function parseGuid(s: string): Guid {
  const t = s
    .trim()
    .replace(/^\{(.*)\}$/, '$1')
    .toLowerCase();
  if (!GUID_RE.test(t)) throw new ProtocolError('BAD_VALUE', `not a GUID: ${JSON.stringify(s)}`);
  return t;
}

/**
 * Microsoft mixed-endian wire order (spec a.3): Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, then Data4
 * as written.
 */
export function guidFromBytes(b: Uint8Array, at = 0): Guid {
  // Fast path: the 36 character codes into a reused array, then one String.fromCharCode: a flat string
  // (4× faster than concatenating 20 pieces, and no rope to flatten when it becomes a Map key).
  if ((at | 0) === at && at >= 0 && at + 16 <= b.length) {
    const codes = GUID_CODES;
    let o = 0;
    for (let i = 0; i < 20; i++) {
      const src = GUID_LAYOUT[i]!;
      if (src < 0) {
        codes[o++] = 45; // '-'
      } else {
        const v = b[at + src]!;
        codes[o++] = HEX_CODES[v >> 4]!;
        codes[o++] = HEX_CODES[v & 15]!;
      }
    }
    return String.fromCharCode.apply(null, codes);
  }
  const h = (i: number) => HEX[b[at + i]!]!;
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

/** Byte index for each of the 20 output slots of guidFromBytes (two hex digits each), -1 for a dash. */
const GUID_LAYOUT = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15];
const HEX_CODES = Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
const GUID_CODES: number[] = new Array<number>(36).fill(0);
/** Hex digit value by character code (both cases), -1 for anything else. */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(i)] = i;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(i)] = i;
}
/** String offset of each of the 16 bytes of a canonical GUID string, in wire order (see ORDER). */
const CANONICAL_AT = [6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34];

const ORDER = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];

export function guidToBytes(g: Guid, out: Uint8Array = new Uint8Array(16), at = 0): Uint8Array {
  // Fast path for the canonical layout with 32 valid hex digits (what every GUID on the hot path is);
  // anything else takes the general parse below, so odd input behaves exactly as before.
  if (
    g.length === 36 &&
    g.charCodeAt(8) === 45 &&
    g.charCodeAt(13) === 45 &&
    g.charCodeAt(18) === 45 &&
    g.charCodeAt(23) === 45
  ) {
    let ok = true;
    for (let i = 0; i < 16 && ok; i++) {
      const p = CANONICAL_AT[i]!;
      const c1 = g.charCodeAt(p);
      const c2 = g.charCodeAt(p + 1);
      ok = c1 < 128 && c2 < 128 && HEX_VALUE[c1]! >= 0 && HEX_VALUE[c2]! >= 0;
    }
    if (ok) {
      for (let i = 0; i < 16; i++) {
        const p = CANONICAL_AT[i]!;
        out[at + i] = (HEX_VALUE[g.charCodeAt(p)]! << 4) | HEX_VALUE[g.charCodeAt(p + 1)]!;
      }
      return out;
    }
  }
  const hex = g.replace(/-/g, '');
  if (hex.length !== 32) throw new ProtocolError('BAD_VALUE', `not a GUID: ${JSON.stringify(g)}`);
  for (let i = 0; i < 16; i++) {
    const v = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    if (Number.isNaN(v)) throw new ProtocolError('BAD_VALUE', `not a GUID: ${JSON.stringify(g)}`);
    out[at + ORDER[i]!] = v;
  }
  return out;
}

export function readGuid(r: Reader, field: string): Guid {
  const b = r.bytesView(16, field);
  return guidFromBytes(b, 0);
}

export function writeGuid(w: Writer, g: Guid): void {
  w.raw(guidToBytes(g));
}
