/**
 * DCE/RPC connection-oriented PDUs as plain typed objects (spec a.2-a.9). decode.ts turns bytes into
 * these, encode.ts turns them back into bytes.
 *
 * Conventions:
 * - frag_length and auth_length are not stored on PDU objects; the encoder derives them. Only
 *   `PduHeader` (what `decodeHeader` returns) carries them.
 * - rpc_vers is always 5 on a decoded PDU (anything else is a ProtocolError), so PDU objects do not
 *   carry it. rpc_vers_minor and packed_drep are kept as received, so re-encoding is byte-exact.
 * - Bytes the protocol calls reserved or padding are kept only when they are not zero (or not the
 *   canonical padding): `reserved`, `padding`, `trailing`. A PDU built by hand leaves them out and gets
 *   zeros. This is what makes `encodePdu(decodePdu(b))` reproduce `b` for vlmcsd's captures, whose
 *   bind_ack / alter_context_resp / fault PDUs carry uninitialised bytes there (spec a.4, a.9).
 */
import { type Guid, guidFromBytes, guidToBytes } from '../wire/guid.js';
import {
  BTFN_PREFIX,
  BTFN_VERSION,
  DREP_LE,
  FAULT_LENGTH,
  PFC,
  PTYPE,
  RPC_VERSION_MINOR,
} from './constants.js';

export type Drep = readonly [number, number, number, number];

/** The 16-byte common header (spec a.2), exactly as read. `type` is the raw PTYPE byte. */
export interface PduHeader {
  rpcVersion: number;
  rpcVersionMinor: number;
  type: number;
  flags: number;
  drep: Drep;
  fragLength: number;
  authLength: number;
  callId: number;
}

/** Header fields every PDU object carries. */
export interface PduCommon {
  /** pfc_flags. On a request, the encoder sets or clears PFC_OBJECT_UUID from `objectUuid`. */
  flags: number;
  callId: number;
  /** 0 on everything we send; 0 or 1 from clients (spec a.2). */
  rpcVersionMinor: number;
  drep: Drep;
  /**
   * sec_trailer (8 bytes) + auth_value when auth_length > 0, i.e. the last `auth_length + 8` bytes of
   * the PDU; auth_length = `authVerifier.length - 8`. KMS never authenticates (spec a.1); this exists
   * so such PDUs decode, round-trip and can be refused politely. Auth padding stays in the body.
   */
  authVerifier?: Uint8Array;
}

export interface AbstractSyntax {
  uuid: Guid;
  versionMajor: number;
  versionMinor: number;
}

export interface TransferSyntax {
  uuid: Guid;
  /** u32 syntax version. */
  version: number;
  /**
   * The 16 wire bytes of the UUID. Informational (BTFN carries its bitmask in the last 8); the encoder
   * writes `uuid`.
   */
  raw: Uint8Array;
}

/** p_cont_elem_t (spec a.3). Its wire size is 24 + 20 × transferSyntaxes.length. */
export interface PresentationContext {
  contextId: number;
  abstractSyntax: AbstractSyntax;
  transferSyntaxes: TransferSyntax[];
  /** The reserved byte after n_transfer_syn, when not 0. */
  reserved?: number;
}

/** p_result_t (spec a.4). */
export interface ContextResult {
  result: number;
  reason: number;
  transferSyntax: { uuid: Guid; version: number };
}

/** Body shared by bind and alter_context (spec a.3). */
export interface BindBody {
  maxXmitFrag: number;
  maxRecvFrag: number;
  assocGroupId: number;
  contexts: PresentationContext[];
  /** Bytes 25-27 (reserved u8, reserved2 u16) as a 24-bit little-endian value, when not 0. */
  reserved?: number;
  /** Bytes after the last context element (before any auth verifier), when present. */
  trailing?: Uint8Array;
}

/** Body shared by bind_ack and alter_context_resp (spec a.4). */
export interface BindAckBody {
  maxXmitFrag: number;
  maxRecvFrag: number;
  assocGroupId: number;
  /** port_spec without its NUL; '' is encoded as sec_addr.length 0 (alter_context_resp). */
  secondaryAddress: string;
  /** The 0-3 bytes that align n_results to 4, when not all zero (vlmcsd leaves them uninitialised). */
  padding?: Uint8Array;
  /** The 3 bytes after n_results as a 24-bit little-endian value, when not 0. */
  reserved?: number;
  trailing?: Uint8Array;
  results: ContextResult[];
}

export interface BindPdu extends PduCommon, BindBody {
  type: typeof PTYPE.BIND;
}

export interface AlterContextPdu extends PduCommon, BindBody {
  type: typeof PTYPE.ALTER_CONTEXT;
}

export interface BindAckPdu extends PduCommon, BindAckBody {
  type: typeof PTYPE.BIND_ACK;
}

export interface AlterContextRespPdu extends PduCommon, BindAckBody {
  type: typeof PTYPE.ALTER_CONTEXT_RESP;
}

export interface ProtocolVersion {
  major: number;
  minor: number;
}

/** bind_nak (spec a.5). */
export interface BindNakPdu extends PduCommon {
  type: typeof PTYPE.BIND_NAK;
  rejectReason: number;
  versions: ProtocolVersion[];
  /**
   * Everything after the version list, when it is not just the zero padding to a multiple of 4 (e.g.
   * the [MS-RPCE] signature and extended error info). When present the encoder writes it instead of
   * the padding.
   */
  trailing?: Uint8Array;
}

/** request (spec a.6). */
export interface RequestPdu extends PduCommon {
  type: typeof PTYPE.REQUEST;
  allocHint: number;
  contextId: number;
  opnum: number;
  /** Present iff PFC_OBJECT_UUID is set. */
  objectUuid?: Guid;
  stub: Uint8Array;
}

/** response (spec a.7). */
export interface ResponsePdu extends PduCommon {
  type: typeof PTYPE.RESPONSE;
  allocHint: number;
  contextId: number;
  cancelCount: number;
  stub: Uint8Array;
  /** The reserved byte after cancel_count, when not 0. */
  reserved?: number;
}

/** fault (spec a.9). */
export interface FaultPdu extends PduCommon {
  type: typeof PTYPE.FAULT;
  allocHint: number;
  contextId: number;
  cancelCount: number;
  status: number;
  /** The reserved byte after cancel_count, when not 0. */
  reserved?: number;
  /** The reserved u32 after status, when not 0. */
  reserved2?: number;
  /** Bytes after the 32-byte fault (fault stub / extended error info), when present. */
  trailing?: Uint8Array;
}

/** auth3, shutdown, co_cancel and orphaned: header + raw body. */
export interface GenericPdu extends PduCommon {
  type: typeof PTYPE.AUTH3 | typeof PTYPE.SHUTDOWN | typeof PTYPE.CO_CANCEL | typeof PTYPE.ORPHANED;
  body: Uint8Array;
}

export type Pdu =
  | BindPdu
  | BindAckPdu
  | BindNakPdu
  | AlterContextPdu
  | AlterContextRespPdu
  | RequestPdu
  | ResponsePdu
  | FaultPdu
  | GenericPdu;

// ---------------------------------------------------------------------------------------------------
// Small builders for the PDUs a server sends, with the spec's defaults.

const FIRST_LAST = PFC.FIRST_FRAG | PFC.LAST_FRAG;

function common(callId: number, flags: number): PduCommon {
  return { flags, callId, rpcVersionMinor: RPC_VERSION_MINOR, drep: DREP_LE };
}

/** A single-fragment response; alloc_hint = stub length (spec a.7). */
export function makeResponse(callId: number, contextId: number, stub: Uint8Array): ResponsePdu {
  return {
    type: PTYPE.RESPONSE,
    ...common(callId, FIRST_LAST),
    allocHint: stub.length,
    contextId,
    cancelCount: 0,
    stub,
  };
}

/**
 * A 32-byte fault: flags 0x23 when the call did not execute, alloc_hint 32, the request's call_id and
 * context id (spec a.9).
 */
export function makeFault(callId: number, contextId: number, status: number, didNotExecute = true): FaultPdu {
  return {
    type: PTYPE.FAULT,
    ...common(callId, FIRST_LAST | (didNotExecute ? PFC.DID_NOT_EXECUTE : 0)),
    allocHint: FAULT_LENGTH,
    contextId,
    cancelCount: 0,
    status,
  };
}

/** bind_nak supporting only RPC 5.0 (spec a.5). */
export function makeBindNak(callId: number, rejectReason: number): BindNakPdu {
  return {
    type: PTYPE.BIND_NAK,
    ...common(callId, FIRST_LAST),
    rejectReason,
    versions: [{ major: 5, minor: 0 }],
  };
}

export function makeBindAck(
  callId: number,
  flags: number,
  body: Omit<BindAckBody, 'padding' | 'reserved' | 'trailing'>,
): BindAckPdu {
  return { type: PTYPE.BIND_ACK, ...common(callId, flags), ...body };
}

export function makeAlterContextResp(
  callId: number,
  flags: number,
  body: Omit<BindAckBody, 'padding' | 'reserved' | 'trailing'>,
): AlterContextRespPdu {
  return { type: PTYPE.ALTER_CONTEXT_RESP, ...common(callId, flags), ...body };
}

/** A transfer syntax entry for `uuid` (fills `raw`). */
export function transferSyntax(uuid: Guid, version: number): TransferSyntax {
  return { uuid, version, raw: guidToBytes(uuid) };
}

/** The BTFN transfer syntax a client offers, with Bitmask[0] = `bitmask0` (spec a.3). */
export function btfnTransferSyntax(bitmask0: number): TransferSyntax {
  const raw = new Uint8Array(16);
  raw.set(BTFN_PREFIX, 0);
  raw[8] = bitmask0 & 0xff;
  return { uuid: guidFromBytes(raw), version: BTFN_VERSION, raw };
}

/** The BTFN bitmask bytes (8) if this transfer syntax is bind-time feature negotiation, else null. */
export function btfnBitmask(ts: TransferSyntax): Uint8Array | null {
  const raw = ts.raw.length === 16 ? ts.raw : guidToBytes(ts.uuid);
  for (let i = 0; i < BTFN_PREFIX.length; i++) if (raw[i] !== BTFN_PREFIX[i]) return null;
  return raw.subarray(8, 16);
}
