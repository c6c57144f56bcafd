/**
 * Bytes → PDU objects (spec a.2-a.9). Every length read from the wire is checked against the bytes
 * actually present before it is used; every failure is a ProtocolError (never a RangeError or
 * TypeError). `stub` and `body` fields are views into the input; everything else is copied.
 */

import { u16le, u32le } from '../wire/bytes.js';
import { ProtocolError } from '../wire/errors.js';
import { guidFromBytes, readGuid } from '../wire/guid.js';
import { Reader } from '../wire/reader.js';
import { HEADER_LENGTH, isCoPtype, PFC, PTYPE, ptypeName, RPC_VERSION } from './constants.js';
import type {
  AbstractSyntax,
  AlterContextPdu,
  BindAckBody,
  BindBody,
  BindNakPdu,
  BindPdu,
  ContextResult,
  Drep,
  FaultPdu,
  GenericPdu,
  Pdu,
  PduCommon,
  PduHeader,
  PresentationContext,
  ProtocolVersion,
  RequestPdu,
  ResponsePdu,
  TransferSyntax,
} from './pdu.js';

/** Sizes of the fixed parts, used to bound counts before looping over them. */
const CONTEXT_ELEM_MIN = 24;
const TRANSFER_SYNTAX_SIZE = 20;
const RESULT_SIZE = 24;
const SEC_TRAILER_SIZE = 8;

/**
 * Reads the 16 header bytes without judging them (only SHORT_INPUT if fewer than 16 bytes). Lets a
 * caller answer a bind with rpc_vers 4 by a bind_nak carrying its call_id (spec a.5).
 */
export function readHeader(bytes: Uint8Array): PduHeader {
  const r = new Reader(bytes);
  r.need(HEADER_LENGTH, 'header');
  const rpcVersion = r.u8('rpc_vers');
  const rpcVersionMinor = r.u8('rpc_vers_minor');
  const type = r.u8('PTYPE');
  const flags = r.u8('pfc_flags');
  const drep: Drep = [r.u8('packed_drep'), r.u8('packed_drep'), r.u8('packed_drep'), r.u8('packed_drep')];
  const fragLength = r.u16('frag_length');
  const authLength = r.u16('auth_length');
  const callId = r.u32('call_id');
  return { rpcVersion, rpcVersionMinor, type, flags, drep, fragLength, authLength, callId };
}

/**
 * Throws the ProtocolError a header deserves, in this order: BAD_RPC_VERSION (rpc_vers ≠ 5),
 * BAD_PTYPE (connectionless or unknown PTYPE), BAD_DREP (not little-endian), BAD_FRAG_LENGTH
 * (frag_length < 16). rpc_vers_minor is not judged (spec a.2 accepts 0 or 1; we are lenient).
 */
export function validateHeader(h: PduHeader): void {
  if (h.rpcVersion !== RPC_VERSION) {
    throw new ProtocolError('BAD_RPC_VERSION', `rpc_vers ${h.rpcVersion}.${h.rpcVersionMinor}, expected 5`, {
      field: 'rpc_vers',
      offset: 0,
    });
  }
  if (!isCoPtype(h.type)) {
    throw new ProtocolError(
      'BAD_PTYPE',
      `PTYPE ${h.type} (${ptypeName(h.type)}) is not connection-oriented`,
      {
        field: 'PTYPE',
        offset: 2,
      },
    );
  }
  if ((h.drep[0] & 0xf0) !== 0x10) {
    throw new ProtocolError('BAD_DREP', `packed_drep[0] 0x${h.drep[0].toString(16)}: not little-endian`, {
      field: 'packed_drep',
      offset: 4,
    });
  }
  if (h.fragLength < HEADER_LENGTH) {
    throw new ProtocolError('BAD_FRAG_LENGTH', `frag_length ${h.fragLength} < ${HEADER_LENGTH}`, {
      field: 'frag_length',
      offset: 8,
    });
  }
}

/** `readHeader` + `validateHeader`. Needs only the first 16 bytes. */
export function decodeHeader(bytes: Uint8Array): PduHeader {
  const h = readHeader(bytes);
  validateHeader(h);
  return h;
}

/** Decodes one whole PDU; `bytes.length` must equal its frag_length. */
export function decodePdu(bytes: Uint8Array): Pdu {
  // Hot path: a well-formed request without auth verifier or object UUID (every KMS call). Same object,
  // same key order as the general path below, which handles everything else and every error.
  const n = bytes.length;
  if (
    n >= HEADER_LENGTH + 8 &&
    bytes[2] === PTYPE.REQUEST &&
    bytes[0] === RPC_VERSION &&
    (bytes[4]! & 0xf0) === 0x10 &&
    u16le(bytes, 8) === n &&
    bytes[10] === 0 &&
    bytes[11] === 0 &&
    (bytes[3]! & PFC.OBJECT_UUID) === 0
  ) {
    return {
      type: PTYPE.REQUEST,
      flags: bytes[3]!,
      callId: u32le(bytes, 12),
      rpcVersionMinor: bytes[1]!,
      drep: [bytes[4]!, bytes[5]!, bytes[6]!, bytes[7]!],
      allocHint: u32le(bytes, 16),
      contextId: u16le(bytes, 20),
      opnum: u16le(bytes, 22),
      stub: bytes.subarray(HEADER_LENGTH + 8, n),
    };
  }
  const h = decodeHeader(bytes);
  if (h.fragLength !== bytes.length) {
    throw new ProtocolError(
      'BAD_FRAG_LENGTH',
      `frag_length ${h.fragLength} but ${bytes.length} bytes given`,
      {
        field: 'frag_length',
        offset: 8,
        needed: h.fragLength,
        available: bytes.length,
      },
    );
  }
  let end = bytes.length;
  const common: PduCommon = {
    flags: h.flags,
    callId: h.callId,
    rpcVersionMinor: h.rpcVersionMinor,
    drep: h.drep,
  };
  if (h.authLength > 0) {
    const need = h.authLength + SEC_TRAILER_SIZE;
    const available = bytes.length - HEADER_LENGTH;
    if (need > available) {
      throw new ProtocolError(
        'SHORT_INPUT',
        `auth_verifier: auth_length ${h.authLength} needs ${need} bytes, the PDU body has ${available}`,
        { field: 'auth_verifier', offset: HEADER_LENGTH, needed: need, available },
      );
    }
    end -= need;
    common.authVerifier = copy(bytes.subarray(end));
  }
  const r = new Reader(bytes, HEADER_LENGTH, end);
  switch (h.type) {
    case PTYPE.BIND:
      return { type: PTYPE.BIND, ...common, ...decodeBindBody(r) };
    case PTYPE.ALTER_CONTEXT:
      return { type: PTYPE.ALTER_CONTEXT, ...common, ...decodeBindBody(r) };
    case PTYPE.BIND_ACK:
      return { type: PTYPE.BIND_ACK, ...common, ...decodeBindAckBody(r) };
    case PTYPE.ALTER_CONTEXT_RESP:
      return { type: PTYPE.ALTER_CONTEXT_RESP, ...common, ...decodeBindAckBody(r) };
    case PTYPE.BIND_NAK:
      return { type: PTYPE.BIND_NAK, ...common, ...decodeBindNakBody(r) };
    case PTYPE.REQUEST:
      return { type: PTYPE.REQUEST, ...common, ...decodeRequestBody(r, h.flags) };
    case PTYPE.RESPONSE:
      return { type: PTYPE.RESPONSE, ...common, ...decodeResponseBody(r) };
    case PTYPE.FAULT:
      return { type: PTYPE.FAULT, ...common, ...decodeFaultBody(r) };
    case PTYPE.AUTH3:
    case PTYPE.SHUTDOWN:
    case PTYPE.CO_CANCEL:
    case PTYPE.ORPHANED:
      return { type: h.type, ...common, ...decodeGenericBody(r) };
    default:
      // validateHeader already refused every other PTYPE.
      throw new ProtocolError('BAD_PTYPE', `PTYPE ${h.type} is not connection-oriented`, { field: 'PTYPE' });
  }
}

// ---------------------------------------------------------------------------------------------------
// Per-type body decoders. Each takes a Reader positioned at PDU offset 16 whose end is the end of the
// body (before any auth verifier).

/** Rest of the body as a copy, or undefined when nothing is left. */
function rest(r: Reader, field: string): Uint8Array | undefined {
  return r.remaining > 0 ? copy(r.bytesView(r.remaining, field)) : undefined;
}

function reserved24(r: Reader, field: string): number {
  return r.u8(field) | (r.u16(field) << 8);
}

/** Throws SHORT_INPUT before a loop over `count` items of at least `size` bytes each. */
function bound(r: Reader, count: number, size: number, field: string): void {
  r.need(count * size, field);
}

/** bind / alter_context body (spec a.3). */
export function decodeBindBody(r: Reader): BindBody {
  const maxXmitFrag = r.u16('max_xmit_frag');
  const maxRecvFrag = r.u16('max_recv_frag');
  const assocGroupId = r.u32('assoc_group_id');
  const n = r.u8('n_context_elem');
  const reserved = reserved24(r, 'p_context_elem.reserved');
  bound(r, n, CONTEXT_ELEM_MIN, 'p_cont_elem');
  const contexts: PresentationContext[] = [];
  for (let i = 0; i < n; i++) contexts.push(decodeContextElement(r));
  const body: BindBody = { maxXmitFrag, maxRecvFrag, assocGroupId, contexts };
  if (reserved !== 0) body.reserved = reserved;
  const trailing = rest(r, 'trailing');
  if (trailing) body.trailing = trailing;
  return body;
}

/** p_cont_elem_t, walked by its own size 24 + 20 × n_transfer_syn (spec a.3). */
export function decodeContextElement(r: Reader): PresentationContext {
  const contextId = r.u16('p_cont_id');
  const nts = r.u8('n_transfer_syn');
  const reserved = r.u8('p_cont_elem.reserved');
  const abstractSyntax: AbstractSyntax = {
    uuid: readGuid(r, 'abstract_syntax.if_uuid'),
    versionMajor: r.u16('abstract_syntax.if_vers_major'),
    versionMinor: r.u16('abstract_syntax.if_vers_minor'),
  };
  bound(r, nts, TRANSFER_SYNTAX_SIZE, 'transfer_syntaxes');
  const transferSyntaxes: TransferSyntax[] = [];
  for (let j = 0; j < nts; j++) {
    const raw = copy(r.bytesView(16, 'transfer_syntax.if_uuid'));
    transferSyntaxes.push({ uuid: guidFromBytes(raw), version: r.u32('transfer_syntax.if_version'), raw });
  }
  const ctx: PresentationContext = { contextId, abstractSyntax, transferSyntaxes };
  if (reserved !== 0) ctx.reserved = reserved;
  return ctx;
}

/** bind_ack / alter_context_resp body (spec a.4). The pad is measured from the PDU start. */
export function decodeBindAckBody(r: Reader): BindAckBody {
  const maxXmitFrag = r.u16('max_xmit_frag');
  const maxRecvFrag = r.u16('max_recv_frag');
  const assocGroupId = r.u32('assoc_group_id');
  const len = r.u16('sec_addr.length');
  const port = r.bytesView(len, 'sec_addr.port_spec');
  if (len > 0 && port[len - 1] !== 0) {
    throw new ProtocolError('BAD_VALUE', 'sec_addr.port_spec is not NUL-terminated', {
      field: 'sec_addr.port_spec',
      offset: r.offset - 1,
    });
  }
  const secondaryAddress = len > 0 ? latin1(port.subarray(0, len - 1)) : '';
  const padLen = (4 - (r.offset & 3)) & 3;
  const pad = r.bytesView(padLen, 'pad');
  const n = r.u8('n_results');
  const reserved = reserved24(r, 'p_result_list.reserved');
  bound(r, n, RESULT_SIZE, 'p_results');
  const results: ContextResult[] = [];
  for (let i = 0; i < n; i++) {
    const result = r.u16('p_result.result');
    const reason = r.u16('p_result.reason');
    const uuid = readGuid(r, 'p_result.transfer_syntax.if_uuid');
    const version = r.u32('p_result.transfer_syntax.if_version');
    results.push({ result, reason, transferSyntax: { uuid, version } });
  }
  const body: BindAckBody = { maxXmitFrag, maxRecvFrag, assocGroupId, secondaryAddress, results };
  if (pad.some((b) => b !== 0)) body.padding = copy(pad);
  if (reserved !== 0) body.reserved = reserved;
  const trailing = rest(r, 'trailing');
  if (trailing) body.trailing = trailing;
  return body;
}

/** bind_nak body (spec a.5). */
export function decodeBindNakBody(r: Reader): Pick<BindNakPdu, 'rejectReason' | 'versions' | 'trailing'> {
  const rejectReason = r.u16('provider_reject_reason');
  const n = r.u8('n_protocols');
  bound(r, n, 2, 'p_protocols');
  const versions: ProtocolVersion[] = [];
  for (let i = 0; i < n; i++) versions.push({ major: r.u8('rpc_vers'), minor: r.u8('rpc_vers_minor') });
  const canonicalPad = (4 - (r.offset & 3)) & 3;
  const tail = r.bytesView(r.remaining, 'trailing');
  const out: Pick<BindNakPdu, 'rejectReason' | 'versions' | 'trailing'> = { rejectReason, versions };
  if (tail.length !== canonicalPad || tail.some((b) => b !== 0)) out.trailing = copy(tail);
  return out;
}

/** request body (spec a.6). */
export function decodeRequestBody(
  r: Reader,
  flags: number,
): Pick<RequestPdu, 'allocHint' | 'contextId' | 'opnum' | 'objectUuid' | 'stub'> {
  const allocHint = r.u32('alloc_hint');
  const contextId = r.u16('p_cont_id');
  const opnum = r.u16('opnum');
  const out: Pick<RequestPdu, 'allocHint' | 'contextId' | 'opnum' | 'objectUuid' | 'stub'> = {
    allocHint,
    contextId,
    opnum,
    stub: new Uint8Array(0),
  };
  if (flags & PFC.OBJECT_UUID) out.objectUuid = readGuid(r, 'object');
  out.stub = r.bytesView(r.remaining, 'stub');
  return out;
}

/** response body (spec a.7). */
export function decodeResponseBody(
  r: Reader,
): Pick<ResponsePdu, 'allocHint' | 'contextId' | 'cancelCount' | 'stub' | 'reserved'> {
  const allocHint = r.u32('alloc_hint');
  const contextId = r.u16('p_cont_id');
  const cancelCount = r.u8('cancel_count');
  const reserved = r.u8('reserved');
  const stub = r.bytesView(r.remaining, 'stub');
  return reserved !== 0
    ? { allocHint, contextId, cancelCount, stub, reserved }
    : { allocHint, contextId, cancelCount, stub };
}

/** fault body (spec a.9). */
export function decodeFaultBody(
  r: Reader,
): Pick<
  FaultPdu,
  'allocHint' | 'contextId' | 'cancelCount' | 'status' | 'reserved' | 'reserved2' | 'trailing'
> {
  const out: Pick<
    FaultPdu,
    'allocHint' | 'contextId' | 'cancelCount' | 'status' | 'reserved' | 'reserved2' | 'trailing'
  > = {
    allocHint: r.u32('alloc_hint'),
    contextId: r.u16('p_cont_id'),
    cancelCount: r.u8('cancel_count'),
    status: 0,
  };
  const reserved = r.u8('reserved');
  out.status = r.u32('status');
  const reserved2 = r.u32('reserved2');
  if (reserved !== 0) out.reserved = reserved;
  if (reserved2 !== 0) out.reserved2 = reserved2;
  const trailing = rest(r, 'trailing');
  if (trailing) out.trailing = trailing;
  return out;
}

export function decodeGenericBody(r: Reader): Pick<GenericPdu, 'body'> {
  return { body: r.bytesView(r.remaining, 'body') };
}

/** PDU offset of n_context_elem in a bind or alter_context body (spec a.3). */
export const BIND_CONTEXTS_AT = 24;

/**
 * A bind or alter_context whose body runs from BIND_CONTEXTS_AT to the end: little-endian rpc_vers 5,
 * frag_length the whole PDU, no auth verifier, at least the fixed part of the body. Its context list
 * bytes (`bytes.subarray(BIND_CONTEXTS_AT)`) then decode the same wherever they occur.
 */
export function isPlainBindLike(b: Uint8Array): boolean {
  return (
    (b[2] === PTYPE.BIND || b[2] === PTYPE.ALTER_CONTEXT) &&
    b.length >= BIND_CONTEXTS_AT + 4 &&
    b[0] === RPC_VERSION &&
    (b[4]! & 0xf0) === 0x10 &&
    u16le(b, 8) === b.length &&
    b[10] === 0 &&
    b[11] === 0
  );
}

/**
 * What decodePdu gives for a plain bind or alter_context (isPlainBindLike) whose context list, from
 * BIND_CONTEXTS_AT on, was decoded before into `rest`: only the header and the fixed body fields are
 * read.
 */
export function decodeBindLikeWith(
  b: Uint8Array,
  rest: Pick<BindBody, 'contexts' | 'reserved' | 'trailing'>,
): BindPdu | AlterContextPdu {
  const pdu: BindPdu | AlterContextPdu = {
    type: b[2] === PTYPE.BIND ? PTYPE.BIND : PTYPE.ALTER_CONTEXT,
    flags: b[3]!,
    callId: u32le(b, 12),
    rpcVersionMinor: b[1]!,
    drep: [b[4]!, b[5]!, b[6]!, b[7]!],
    maxXmitFrag: u16le(b, 16),
    maxRecvFrag: u16le(b, 18),
    assocGroupId: u32le(b, 20),
    contexts: rest.contexts,
  };
  if (rest.reserved !== undefined) pdu.reserved = rest.reserved;
  if (rest.trailing !== undefined) pdu.trailing = rest.trailing;
  return pdu;
}

/** A plain Uint8Array copy (`Buffer#slice` would return a view for Buffer input). */
function copy(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

/** One char per byte, so any byte string survives a decode/encode round trip. */
function latin1(b: Uint8Array): string {
  let s = '';
  for (const c of b) s += String.fromCharCode(c);
  return s;
}
