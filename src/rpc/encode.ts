/**
 * PDU objects → bytes (spec a.2-a.9). `encodingLength` sizes the buffer up front; the per-type encoders
 * write into a Writer positioned at PDU offset 16. Values out of range for their wire field are a
 * ProtocolError('BAD_VALUE'); a PDU longer than 65535 bytes is 'PDU_TOO_LARGE'.
 */
import { ProtocolError } from '../wire/errors.js';
import { guidToBytes } from '../wire/guid.js';
import { Writer } from '../wire/writer.js';
import { HEADER_LENGTH, MAX_FRAG_LENGTH, PFC, PTYPE, RPC_VERSION } from './constants.js';
import type {
  BindAckBody,
  BindBody,
  BindNakPdu,
  FaultPdu,
  Pdu,
  PduCommon,
  PresentationContext,
  RequestPdu,
  ResponsePdu,
} from './pdu.js';

const SEC_TRAILER_SIZE = 8;

function check(v: number, max: number, field: string): number {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new ProtocolError('BAD_VALUE', `${field}: ${v} is not an integer in 0..${max}`, { field });
  }
  return v;
}
const u8 = (v: number, f: string) => check(v, 0xff, f);
const u16 = (v: number, f: string) => check(v, 0xffff, f);
const u32 = (v: number, f: string) => check(v, 0xffffffff, f);

function authLength(c: PduCommon): number {
  const a = c.authVerifier;
  if (a === undefined) return 0;
  if (a.length <= SEC_TRAILER_SIZE) {
    throw new ProtocolError(
      'BAD_VALUE',
      `authVerifier: ${a.length} bytes, needs the 8-byte sec_trailer + value`,
      {
        field: 'authVerifier',
      },
    );
  }
  return u16(a.length - SEC_TRAILER_SIZE, 'auth_length');
}

// ---------------------------------------------------------------------------------------------------
// Lengths

function contextElementLength(c: PresentationContext): number {
  return 24 + 20 * c.transferSyntaxes.length;
}

function bindBodyLength(b: BindBody): number {
  let n = 12;
  for (const c of b.contexts) n += contextElementLength(c);
  return n + (b.trailing?.length ?? 0);
}

function secAddrLength(b: BindAckBody): number {
  return b.secondaryAddress.length === 0 ? 0 : b.secondaryAddress.length + 1;
}

/** Pad after the port string so n_results starts at a PDU offset that is a multiple of 4 (spec a.4). */
function bindAckPadLength(b: BindAckBody): number {
  return (4 - ((HEADER_LENGTH + 10 + secAddrLength(b)) & 3)) & 3;
}

function bindAckBodyLength(b: BindAckBody): number {
  return 10 + secAddrLength(b) + bindAckPadLength(b) + 4 + 24 * b.results.length + (b.trailing?.length ?? 0);
}

function bindNakPadLength(p: BindNakPdu): number {
  return (4 - ((HEADER_LENGTH + 3 + 2 * p.versions.length) & 3)) & 3;
}

function bindNakBodyLength(p: BindNakPdu): number {
  return 3 + 2 * p.versions.length + (p.trailing?.length ?? bindNakPadLength(p));
}

function bodyLength(pdu: Pdu): number {
  switch (pdu.type) {
    case PTYPE.BIND:
    case PTYPE.ALTER_CONTEXT:
      return bindBodyLength(pdu);
    case PTYPE.BIND_ACK:
    case PTYPE.ALTER_CONTEXT_RESP:
      return bindAckBodyLength(pdu);
    case PTYPE.BIND_NAK:
      return bindNakBodyLength(pdu);
    case PTYPE.REQUEST:
      return 8 + (pdu.objectUuid !== undefined ? 16 : 0) + pdu.stub.length;
    case PTYPE.RESPONSE:
      return 8 + pdu.stub.length;
    case PTYPE.FAULT:
      return 16 + (pdu.trailing?.length ?? 0);
    default:
      return pdu.body.length;
  }
}

/** Total PDU size = its frag_length. */
export function encodingLength(pdu: Pdu): number {
  const a = pdu.authVerifier?.length ?? 0;
  return HEADER_LENGTH + bodyLength(pdu) + a;
}

// ---------------------------------------------------------------------------------------------------
// Encoders

export function encodePdu(pdu: Pdu): Uint8Array {
  const total = encodingLength(pdu);
  if (total > MAX_FRAG_LENGTH) {
    throw new ProtocolError('PDU_TOO_LARGE', `PDU of ${total} bytes does not fit frag_length (u16)`, {
      field: 'frag_length',
      needed: total,
      available: MAX_FRAG_LENGTH,
    });
  }
  const w = new Writer(total);
  let flags = u8(pdu.flags, 'pfc_flags');
  if (pdu.type === PTYPE.REQUEST) {
    flags = pdu.objectUuid !== undefined ? flags | PFC.OBJECT_UUID : flags & ~PFC.OBJECT_UUID;
  }
  w.u8(RPC_VERSION).u8(u8(pdu.rpcVersionMinor, 'rpc_vers_minor')).u8(pdu.type).u8(flags);
  for (let i = 0; i < 4; i++) w.u8(u8(pdu.drep[i] ?? 0, 'packed_drep'));
  w.u16(total).u16(authLength(pdu)).u32(u32(pdu.callId, 'call_id'));
  switch (pdu.type) {
    case PTYPE.BIND:
    case PTYPE.ALTER_CONTEXT:
      encodeBindBody(w, pdu);
      break;
    case PTYPE.BIND_ACK:
    case PTYPE.ALTER_CONTEXT_RESP:
      encodeBindAckBody(w, pdu);
      break;
    case PTYPE.BIND_NAK:
      encodeBindNakBody(w, pdu);
      break;
    case PTYPE.REQUEST:
      encodeRequestBody(w, pdu);
      break;
    case PTYPE.RESPONSE:
      encodeResponseBody(w, pdu);
      break;
    case PTYPE.FAULT:
      encodeFaultBody(w, pdu);
      break;
    default:
      w.raw(pdu.body);
  }
  if (pdu.authVerifier) w.raw(pdu.authVerifier);
  return w.finish();
}

/**
 * The wire bytes of a syntax GUID, kept: every bind_ack and alter_context_resp names NDR32, NDR64 or
 * the null syntax, and guidToBytes would allocate 16 bytes for each result. The arrays never leave this
 * module (Writer.raw copies them). Bounded: a peer's own GUIDs only ever reach the client-side encoders.
 */
const GUID_BYTES = new Map<string, Uint8Array>();
const MAX_GUID_BYTES = 64;

function guidBytes(g: string): Uint8Array {
  let b = GUID_BYTES.get(g);
  if (b === undefined) {
    b = guidToBytes(g);
    if (GUID_BYTES.size < MAX_GUID_BYTES) GUID_BYTES.set(g, b);
  }
  return b;
}

function reserved24(w: Writer, v: number | undefined, field: string): void {
  const r = check(v ?? 0, 0xffffff, field);
  w.u8(r & 0xff).u16(r >>> 8);
}

function encodeBindBody(w: Writer, b: BindBody): void {
  w.u16(u16(b.maxXmitFrag, 'max_xmit_frag'))
    .u16(u16(b.maxRecvFrag, 'max_recv_frag'))
    .u32(u32(b.assocGroupId, 'assoc_group_id'))
    .u8(u8(b.contexts.length, 'n_context_elem'));
  reserved24(w, b.reserved, 'reserved');
  for (const c of b.contexts) encodeContextElement(w, c);
  if (b.trailing) w.raw(b.trailing);
}

function encodeContextElement(w: Writer, c: PresentationContext): void {
  w.u16(u16(c.contextId, 'p_cont_id'))
    .u8(u8(c.transferSyntaxes.length, 'n_transfer_syn'))
    .u8(u8(c.reserved ?? 0, 'reserved'))
    .raw(guidBytes(c.abstractSyntax.uuid))
    .u16(u16(c.abstractSyntax.versionMajor, 'if_vers_major'))
    .u16(u16(c.abstractSyntax.versionMinor, 'if_vers_minor'));
  for (const t of c.transferSyntaxes) w.raw(guidBytes(t.uuid)).u32(u32(t.version, 'if_version'));
}

function encodeBindAckBody(w: Writer, b: BindAckBody): void {
  w.u16(u16(b.maxXmitFrag, 'max_xmit_frag'))
    .u16(u16(b.maxRecvFrag, 'max_recv_frag'))
    .u32(u32(b.assocGroupId, 'assoc_group_id'))
    .u16(u16(secAddrLength(b), 'sec_addr.length'));
  if (b.secondaryAddress.length > 0) {
    for (let i = 0; i < b.secondaryAddress.length; i++) {
      w.u8(u8(b.secondaryAddress.charCodeAt(i), 'sec_addr.port_spec'));
    }
    w.u8(0);
  }
  const pad = bindAckPadLength(b);
  if (b.padding !== undefined) {
    if (b.padding.length !== pad) {
      throw new ProtocolError('BAD_VALUE', `padding: ${b.padding.length} bytes, the layout needs ${pad}`, {
        field: 'padding',
      });
    }
    w.raw(b.padding);
  } else {
    w.zeros(pad);
  }
  w.u8(u8(b.results.length, 'n_results'));
  reserved24(w, b.reserved, 'reserved');
  for (const r of b.results) {
    w.u16(u16(r.result, 'result'))
      .u16(u16(r.reason, 'reason'))
      .raw(guidBytes(r.transferSyntax.uuid))
      .u32(u32(r.transferSyntax.version, 'if_version'));
  }
  if (b.trailing) w.raw(b.trailing);
}

function encodeBindNakBody(w: Writer, p: BindNakPdu): void {
  w.u16(u16(p.rejectReason, 'provider_reject_reason')).u8(u8(p.versions.length, 'n_protocols'));
  for (const v of p.versions) w.u8(u8(v.major, 'rpc_vers')).u8(u8(v.minor, 'rpc_vers_minor'));
  if (p.trailing) w.raw(p.trailing);
  else w.zeros(bindNakPadLength(p));
}

function encodeRequestBody(w: Writer, p: RequestPdu): void {
  w.u32(u32(p.allocHint, 'alloc_hint')).u16(u16(p.contextId, 'p_cont_id')).u16(u16(p.opnum, 'opnum'));
  if (p.objectUuid !== undefined) w.raw(guidToBytes(p.objectUuid));
  w.raw(p.stub);
}

function encodeResponseBody(w: Writer, p: ResponsePdu): void {
  w.u32(u32(p.allocHint, 'alloc_hint'))
    .u16(u16(p.contextId, 'p_cont_id'))
    .u8(u8(p.cancelCount, 'cancel_count'))
    .u8(u8(p.reserved ?? 0, 'reserved'))
    .raw(p.stub);
}

function encodeFaultBody(w: Writer, p: FaultPdu): void {
  w.u32(u32(p.allocHint, 'alloc_hint'))
    .u16(u16(p.contextId, 'p_cont_id'))
    .u8(u8(p.cancelCount, 'cancel_count'))
    .u8(u8(p.reserved ?? 0, 'reserved'))
    .u32(u32(p.status, 'status'))
    .u32(u32(p.reserved2 ?? 0, 'reserved2'));
  if (p.trailing) w.raw(p.trailing);
}
