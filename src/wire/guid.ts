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

const ORDER = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];

export function guidToBytes(g: Guid, out: Uint8Array = new Uint8Array(16), at = 0): Uint8Array {
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
