/**
 * Byte-level mutators for the fuzz run. Every choice comes from the Random passed in, so an input is
 * a pure function of (seed, iteration).
 */
import type { Random } from '../../src/host/random.js';

/** A length (or count, or size) field: where it is and how wide. */
export interface LengthField {
  offset: number;
  width: 1 | 2 | 4 | 8;
}

/** Values that sit on the edges of the checks a decoder makes. */
const INTERESTING = [
  0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 23, 24, 25, 31, 32, 63, 64, 127, 128, 129, 255, 256, 257, 1024, 1432, 4095,
  4096, 4097, 5839, 5840, 5841, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe,
  0xffffffff,
];

export function pick<T>(r: Random, list: readonly T[]): T {
  return list[r.below(list.length)]!;
}

function interesting(r: Random, len: number, orig: number): number {
  switch (r.below(4)) {
    case 0:
      return pick(r, INTERESTING);
    case 1:
      return len + r.int(-2, 2);
    case 2:
      return orig + r.int(-4, 4);
    default:
      return r.uint32();
  }
}

export function readField(b: Uint8Array, f: LengthField): number {
  let v = 0;
  const w = Math.min(f.width, 4);
  for (let i = w - 1; i >= 0; i--) v = v * 256 + (b[f.offset + i] ?? 0);
  return v;
}

/** Writes `value` little-endian (a u64 gets it in its low half, and sometimes junk in the high half). */
export function writeField(b: Uint8Array, f: LengthField, value: number, r?: Random): void {
  let v = value >>> 0;
  for (let i = 0; i < Math.min(f.width, 4); i++) {
    if (f.offset + i < b.length) b[f.offset + i] = v & 0xff;
    v = Math.floor(v / 256);
  }
  if (f.width === 8) {
    const high = r && r.below(4) === 0 ? r.uint32() : 0;
    for (let i = 0; i < 4; i++)
      if (f.offset + 4 + i < b.length) b[f.offset + 4 + i] = (high >>> (8 * i)) & 0xff;
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export type MutationKind =
  | 'flip'
  | 'set'
  | 'truncate'
  | 'extend'
  | 'insert'
  | 'delete'
  | 'duplicate'
  | 'length'
  | 'splice';

const KINDS: readonly MutationKind[] = [
  'flip',
  'flip',
  'set',
  'set',
  'truncate',
  'extend',
  'insert',
  'delete',
  'duplicate',
  'length',
  'length',
  'length',
  'splice',
];

/**
 * One mutation of `b`. `fields` are the length fields this input kind has (edited by 'length');
 * `donors` are other inputs to splice from.
 */
export function mutateOnce(
  r: Random,
  b: Uint8Array,
  fields: readonly LengthField[],
  donors: readonly Uint8Array[],
  kind: MutationKind = pick(r, KINDS),
): Uint8Array {
  const n = b.length;
  switch (kind) {
    case 'flip': {
      if (n === 0) return b;
      const out = b.slice();
      const k = 1 + r.below(8);
      for (let i = 0; i < k; i++) out[r.below(n)]! ^= 1 << r.below(8);
      return out;
    }
    case 'set': {
      if (n === 0) return b;
      const out = b.slice();
      const k = 1 + r.below(4);
      for (let i = 0; i < k; i++)
        out[r.below(n)] = r.below(3) === 0 ? pick(r, [0, 1, 0x7f, 0x80, 0xff]) : r.below(256);
      return out;
    }
    case 'truncate':
      return b.slice(0, r.below(n + 1));
    case 'extend': {
      const extra =
        r.below(3) === 0
          ? new Uint8Array(1 + r.below(64))
          : r.bytes(1 + r.below(r.below(8) === 0 ? 4096 : 64));
      return concat(b, extra);
    }
    case 'insert': {
      const at = r.below(n + 1);
      return concat(b.subarray(0, at), r.bytes(1 + r.below(32)), b.subarray(at));
    }
    case 'delete': {
      if (n === 0) return b;
      const at = r.below(n);
      const len = 1 + r.below(Math.min(64, n - at));
      return concat(b.subarray(0, at), b.subarray(at + len));
    }
    case 'duplicate': {
      if (n === 0) return b;
      const at = r.below(n);
      const len = 1 + r.below(Math.min(128, n - at));
      const piece = b.subarray(at, at + len);
      return concat(b.subarray(0, at + len), piece, b.subarray(at + len));
    }
    case 'length': {
      const usable = fields.filter((f) => f.offset < n);
      if (usable.length === 0) return mutateOnce(r, b, fields, donors, 'set');
      const f = pick(r, usable);
      const out = b.slice();
      writeField(out, f, interesting(r, n, readField(b, f)), r);
      return out;
    }
    case 'splice': {
      if (donors.length === 0) return b;
      const d = pick(r, donors);
      return concat(b.subarray(0, r.below(n + 1)), d.subarray(r.below(d.length + 1)));
    }
  }
}

/** 1 to `max` stacked mutations. */
export function mutate(
  r: Random,
  b: Uint8Array,
  fields: (bytes: Uint8Array) => readonly LengthField[],
  donors: readonly Uint8Array[],
  max = 3,
): Uint8Array {
  let out = b;
  const k = 1 + r.below(max);
  for (let i = 0; i < k; i++) out = mutateOnce(r, out, fields(out), donors);
  return out;
}

/** Sets frag_length (offset 8) to the real length, so a mutation reaches the body decoders. */
export function fixFragLength(b: Uint8Array): Uint8Array {
  if (b.length < 10 || b.length > 0xffff) return b;
  const out = b.slice();
  out[8] = b.length & 0xff;
  out[9] = b.length >> 8;
  return out;
}

/** Cuts `b` at 0 to `maxCuts` random points (sometimes into 1-byte pieces). */
export function chunk(r: Random, b: Uint8Array, maxCuts = 8): Uint8Array[] {
  if (b.length === 0) return [b];
  if (b.length < 600 && r.below(16) === 0) return Array.from(b, (_, i) => b.subarray(i, i + 1));
  const cuts = new Set<number>();
  const k = r.below(maxCuts + 1);
  for (let i = 0; i < k; i++) cuts.add(1 + r.below(Math.max(1, b.length - 1)));
  const points = [0, ...[...cuts].filter((c) => c < b.length).sort((x, y) => x - y), b.length];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < points.length; i++) out.push(b.subarray(points[i]!, points[i + 1]!));
  return out;
}

/** The length fields of a DCE/RPC PDU (by its PTYPE), including the NDR sizes of a KMS stub inside. */
export function pduFields(b: Uint8Array): LengthField[] {
  const f: LengthField[] = [
    { offset: 8, width: 2 }, // frag_length
    { offset: 10, width: 2 }, // auth_length
    { offset: 2, width: 1 }, // PTYPE
    { offset: 3, width: 1 }, // pfc_flags
  ];
  switch (b[2]) {
    case 11: // bind
    case 14: // alter_context
      f.push(
        { offset: 16, width: 2 }, // max_xmit_frag
        { offset: 18, width: 2 }, // max_recv_frag
        { offset: 24, width: 1 }, // n_context_elem
        { offset: 30, width: 1 }, // first element's n_transfer_syn
        { offset: 74, width: 1 }, // second element's n_transfer_syn (one transfer syntax each)
      );
      break;
    case 12: // bind_ack
    case 15: // alter_context_resp
      f.push({ offset: 24, width: 2 }, { offset: 16, width: 2 }); // sec_addr.length, max_xmit_frag
      if (b.length > 26) {
        const len = (b[24] ?? 0) | ((b[25] ?? 0) << 8);
        const at = 26 + len;
        f.push({ offset: at + ((4 - (at & 3)) & 3), width: 1 }); // n_results
      }
      break;
    case 13: // bind_nak
      f.push({ offset: 18, width: 1 }); // n_protocols
      break;
    case 0: // request: alloc_hint, p_cont_id, opnum, then the NDR32 or NDR64 sizes of the stub
      f.push(
        { offset: 16, width: 4 },
        { offset: 20, width: 2 },
        { offset: 22, width: 2 },
        { offset: 24, width: 4 },
        { offset: 28, width: 4 },
        { offset: 24, width: 8 },
        { offset: 32, width: 8 },
      );
      break;
    case 2: // response: alloc_hint, then responseSize / referent / max_count
      f.push(
        { offset: 16, width: 4 },
        { offset: 24, width: 4 },
        { offset: 28, width: 4 },
        { offset: 32, width: 4 },
        { offset: 24, width: 8 },
        { offset: 40, width: 8 },
      );
      break;
    case 3: // fault: alloc_hint, status
      f.push({ offset: 16, width: 4 }, { offset: 24, width: 4 });
      break;
  }
  return f;
}

export function requestStubFields(ndr: 'ndr32' | 'ndr64'): LengthField[] {
  return ndr === 'ndr32'
    ? [
        { offset: 0, width: 4 },
        { offset: 4, width: 4 },
        { offset: 8, width: 2 }, // the KMS message's own version
        { offset: 10, width: 2 },
      ]
    : [
        { offset: 0, width: 8 },
        { offset: 8, width: 8 },
        { offset: 16, width: 2 },
        { offset: 18, width: 2 },
      ];
}

export function responseStubFields(ndr: 'ndr32' | 'ndr64', b: Uint8Array): LengthField[] {
  const head = ndr === 'ndr32' ? 12 : 24;
  const fields: LengthField[] =
    ndr === 'ndr32'
      ? [
          { offset: 0, width: 4 },
          { offset: 4, width: 4 },
          { offset: 8, width: 4 },
        ]
      : [
          { offset: 0, width: 8 },
          { offset: 8, width: 8 },
          { offset: 16, width: 8 },
        ];
  fields.push({ offset: head + 4, width: 4 }); // a V4 response's PIDSize
  if (b.length >= 4) fields.push({ offset: b.length - 4, width: 4 }); // the HRESULT
  return fields;
}

/** Fields of a KMS message (clear part): the version words, and PIDSize of a V4 response. */
export const MESSAGE_FIELDS: readonly LengthField[] = [
  { offset: 0, width: 2 },
  { offset: 2, width: 2 },
  { offset: 4, width: 4 },
];

/** Fields of a decrypted V5/V6 response (zero-IV view): versions and PIDSize after the first block. */
export const PLAIN_RESPONSE_FIELDS: readonly LengthField[] = [
  { offset: 16, width: 2 },
  { offset: 18, width: 2 },
  { offset: 20, width: 4 },
];
