import { putU32le, u32le } from '../wire/bytes.js';
import { ProtocolError } from '../wire/errors.js';
import { Reader } from '../wire/reader.js';
import { Writer } from '../wire/writer.js';
import type { NdrSyntax } from './messages.js';

/**
 * NDR marshalling of RequestActivation (spec b): the KMS message travels as a conformant byte array;
 * the answer is `[out] responseSize, [out] unique pointer to a conformant array, return HRESULT`.
 */

/** Microsoft's first referent id, used for the non-null `*response` pointer (spec b.2). */
export const REFERENT_ID = 0x00020000;

/** Largest KMS message we unwrap; genuine ones are 252 or 260 bytes. */
export const MAX_MESSAGE_SIZE = 4096;

/**
 * Spec b.1. The two size fields should agree; a mismatch is tolerated by taking the smaller, and the
 * stub must really hold that many bytes. Returns a view of the message.
 */
export function unwrapRequestStub(stub: Uint8Array, syntax: NdrSyntax): Uint8Array {
  // Hot path: an NDR32 stub with both size fields present, read without a Reader. Whatever it does not
  // handle (NDR64, short stubs, every error) goes through the Reader-based code below.
  if (syntax === 'ndr32' && stub.length >= 8) {
    const size = u32le(stub, 0);
    const count = u32le(stub, 4);
    const n = Math.min(size, count);
    if (n >= 4 && n <= stub.length - 8 && n <= MAX_MESSAGE_SIZE) return stub.subarray(8, 8 + n);
  }
  const r = new Reader(stub);
  let size: number;
  let count: number;
  if (syntax === 'ndr32') {
    size = r.u32('requestSize');
    count = r.u32('max_count');
  } else {
    const s64 = r.u64('requestSize');
    const c64 = r.u64('max_count');
    // Only the low 32 bits of requestSize are an int32; the high half is padding (spec b.1).
    size = Number(s64 & 0xffffffffn);
    count = c64 > 0xffffffffn ? 0xffffffff : Number(c64);
  }
  const n = Math.min(size, count);
  if (n < 4) {
    throw new ProtocolError('BAD_STUB', `requestSize ${n} leaves no room for the version`, {
      field: 'requestSize',
    });
  }
  if (n > r.remaining) {
    throw new ProtocolError('BAD_STUB', `requestSize ${n} but the stub holds ${r.remaining} bytes`, {
      field: 'request',
      offset: r.offset,
      needed: n,
      available: r.remaining,
    });
  }
  if (n > MAX_MESSAGE_SIZE) {
    throw new ProtocolError('BAD_STUB', `requestSize ${n} over ${MAX_MESSAGE_SIZE}`, {
      field: 'requestSize',
    });
  }
  return r.bytesView(n, 'request');
}

/** Bytes before the message in a request stub (spec b.1): requestSize and max_count. */
export function requestStubHeadLength(syntax: NdrSyntax): number {
  return syntax === 'ndr32' ? 8 : 16;
}

/**
 * Writes a request stub's head for a `messageLength`-byte message at `out[at]` (spec b.1): the two
 * sizes as u32 (NDR32) or as u64 with a zero high half (NDR64). The message follows at
 * `at + requestStubHeadLength(syntax)`. The one encoder of it: `wrapRequestStub` and the client's
 * in-place stub (`ClientExchange.requestStub`) both call it.
 */
export function writeRequestStubHead(
  out: Uint8Array,
  at: number,
  messageLength: number,
  syntax: NdrSyntax,
): void {
  if (syntax === 'ndr32') {
    putU32le(out, at, messageLength);
    putU32le(out, at + 4, messageLength);
  } else {
    putU32le(out, at, messageLength);
    putU32le(out, at + 4, 0);
    putU32le(out, at + 8, messageLength);
    putU32le(out, at + 12, 0);
  }
}

export function wrapRequestStub(message: Uint8Array, syntax: NdrSyntax): Uint8Array {
  const head = requestStubHeadLength(syntax);
  const out = new Uint8Array(head + message.length);
  writeRequestStubHead(out, 0, message.length, syntax);
  out.set(message, head);
  return out;
}

export function responseStubLength(messageLength: number, syntax: NdrSyntax): number {
  const head = syntax === 'ndr32' ? 12 : 24;
  return head + messageLength + ((4 - (messageLength & 3)) & 3) + 4;
}

/**
 * Writes a response stub's head (spec b.2) for a `messageLength`-byte message into a zero-filled
 * `out` of responseStubLength bytes: responseSize, the referent, max_count, as u32 (NDR32) or u64 with
 * a zero high half (NDR64). Returns the offset of the message. The HRESULT after the pad is 0 unless
 * the caller writes one. The one encoder of it: `wrapResponseStub` and the host's one-buffer encoder
 * (kms/envelope.ts) both call it.
 */
export function writeResponseStubHead(out: Uint8Array, messageLength: number, syntax: NdrSyntax): number {
  const step = syntax === 'ndr32' ? 4 : 8;
  putU32le(out, 0, messageLength);
  putU32le(out, step, REFERENT_ID);
  putU32le(out, 2 * step, messageLength);
  return 3 * step;
}

/** Spec b.2: pad to 4 first, then the HRESULT (the NDR-correct position). */
export function wrapResponseStub(message: Uint8Array, syntax: NdrSyntax, hresult = 0): Uint8Array {
  const out = new Uint8Array(responseStubLength(message.length, syntax));
  out.set(message, writeResponseStubHead(out, message.length, syntax));
  putU32le(out, out.length - 4, hresult);
  return out;
}

/** Spec b.3: 12 bytes in NDR32, 20 in NDR64. */
export function errorStubLength(syntax: NdrSyntax): number {
  return syntax === 'ndr32' ? 12 : 20;
}

/** Spec b.3: size 0, NULL referent, HRESULT. */
export function wrapErrorStub(hresult: number, syntax: NdrSyntax): Uint8Array {
  const w = new Writer(errorStubLength(syntax));
  if (syntax === 'ndr32') w.u32(0).u32(0);
  else w.u64(0n).u64(0n);
  return w.u32(hresult).finish();
}

export interface UnwrappedResponse {
  hresult: number;
  /** null when the host sent a NULL pointer (an error answer). */
  message: Uint8Array | null;
}

/** Client side of spec b.2/b.3. */
export function unwrapResponseStub(stub: Uint8Array, syntax: NdrSyntax): UnwrappedResponse {
  const r = new Reader(stub);
  const wide = syntax === 'ndr64';
  const size = wide ? Number(r.u64('responseSize') & 0xffffffffn) : r.u32('responseSize');
  const referent = wide ? r.u64('referent') : BigInt(r.u32('referent'));
  if (referent === 0n) {
    return { hresult: r.u32('HRESULT'), message: null };
  }
  const count64 = wide ? r.u64('max_count') : BigInt(r.u32('max_count'));
  if (count64 !== BigInt(size)) {
    throw new ProtocolError('BAD_STUB', `responseSize ${size} differs from max_count ${count64}`, {
      field: 'max_count',
    });
  }
  if (size > MAX_MESSAGE_SIZE) {
    throw new ProtocolError('BAD_STUB', `responseSize ${size} over ${MAX_MESSAGE_SIZE}`, {
      field: 'responseSize',
    });
  }
  const message = r.bytesView(size, 'response');
  r.align4('pad');
  const hresult = r.u32('HRESULT');
  return { hresult, message };
}
