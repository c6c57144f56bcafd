/**
 * Numbers of the DCE/RPC connection-oriented protocol as KMS uses it (spec section a). Only values;
 * the PDU shapes are in pdu.ts.
 */

/** PDU types (spec a.2). The connectionless ones (1, 4-10) are listed only so they can be named in logs. */
export const PTYPE = {
  REQUEST: 0,
  PING: 1,
  RESPONSE: 2,
  FAULT: 3,
  WORKING: 4,
  NOCALL: 5,
  REJECT: 6,
  ACK: 7,
  CL_CANCEL: 8,
  FACK: 9,
  CANCEL_ACK: 10,
  BIND: 11,
  BIND_ACK: 12,
  BIND_NAK: 13,
  ALTER_CONTEXT: 14,
  ALTER_CONTEXT_RESP: 15,
  AUTH3: 16,
  SHUTDOWN: 17,
  CO_CANCEL: 18,
  ORPHANED: 19,
} as const;

/** The PDU types of the connection-oriented protocol, i.e. the ones `decodePdu` accepts. */
export type CoPtype =
  | typeof PTYPE.REQUEST
  | typeof PTYPE.RESPONSE
  | typeof PTYPE.FAULT
  | typeof PTYPE.BIND
  | typeof PTYPE.BIND_ACK
  | typeof PTYPE.BIND_NAK
  | typeof PTYPE.ALTER_CONTEXT
  | typeof PTYPE.ALTER_CONTEXT_RESP
  | typeof PTYPE.AUTH3
  | typeof PTYPE.SHUTDOWN
  | typeof PTYPE.CO_CANCEL
  | typeof PTYPE.ORPHANED;

const CO_PTYPES: ReadonlySet<number> = new Set([0, 2, 3, 11, 12, 13, 14, 15, 16, 17, 18, 19]);

export function isCoPtype(v: number): v is CoPtype {
  return CO_PTYPES.has(v);
}

const PTYPE_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(PTYPE).map(([k, v]) => [v, k.toLowerCase()] as const),
);

/** `bind_ack`, `request`, ... or `ptype_<n>` for values no RPC flavour defines. */
export function ptypeName(v: number): string {
  return PTYPE_NAMES.get(v) ?? `ptype_${v}`;
}

/** pfc_flags bits (spec a.2). */
export const PFC = {
  FIRST_FRAG: 0x01,
  LAST_FRAG: 0x02,
  /** PFC_PENDING_CANCEL; on bind/bind_ack/alter PDUs [MS-RPCE] reads it as PFC_SUPPORT_HEADER_SIGN. */
  PENDING_CANCEL: 0x04,
  SUPPORT_HEADER_SIGN: 0x04,
  RESERVED_1: 0x08,
  CONC_MPX: 0x10,
  DID_NOT_EXECUTE: 0x20,
  MAYBE: 0x40,
  OBJECT_UUID: 0x80,
} as const;

/** p_reject_reason_t carried by bind_nak (spec a.5). */
export const BIND_NAK_REASON = {
  NOT_SPECIFIED: 0,
  TEMPORARY_CONGESTION: 1,
  LOCAL_LIMIT_EXCEEDED: 2,
  CALLED_PADDR_UNKNOWN: 3,
  PROTOCOL_VERSION_NOT_SUPPORTED: 4,
  DEFAULT_CONTEXT_NOT_SUPPORTED: 5,
  USER_DATA_NOT_READABLE: 6,
  NO_PSAP_AVAILABLE: 7,
  AUTHENTICATION_TYPE_NOT_RECOGNIZED: 8,
  INVALID_CHECKSUM: 9,
} as const;

/** p_cont_def_result_t of a bind_ack / alter_context_resp result entry (spec a.4). */
export const CONTEXT_RESULT = {
  ACCEPTANCE: 0,
  USER_REJECTION: 1,
  PROVIDER_REJECTION: 2,
  /** [MS-RPCE] addition, answered only to a bind-time feature negotiation element. */
  NEGOTIATE_ACK: 3,
} as const;

/** p_provider_reason_t of a rejected result entry (spec a.4). */
export const PROVIDER_REASON = {
  NOT_SPECIFIED: 0,
  ABSTRACT_SYNTAX_NOT_SUPPORTED: 1,
  PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED: 2,
  LOCAL_LIMIT_EXCEEDED: 3,
} as const;

/** NCA status codes a fault PDU carries (spec a.9). */
export const NCA_STATUS = {
  /** Request on a p_cont_id that was never accepted. */
  UNK_IF: 0x1c010003,
  /** opnum out of range (KMS has only opnum 0). */
  OP_RNG_ERROR: 0x1c010002,
  /** Malformed PDU / protocol violation on a request. */
  PROTO_ERROR: 0x1c01000b,
  /** RPC_X_BAD_STUB_DATA: stub shorter than its own length fields. */
  FAULT_NDR: 0x000006f7,
  /** Alternative to UNK_IF for a bad context id. */
  INVALID_PRES_CONTEXT_ID: 0x1c00001c,
} as const;

export interface SyntaxId {
  /** Canonical lower-case GUID string. */
  uuid: string;
  version: number;
}

/** The KMS interface (abstract syntax), version 1.0 (spec a.3). */
export const KMS_INTERFACE = {
  uuid: '51c82175-844e-4750-b0d8-ec255555bc06',
  versionMajor: 1,
  versionMinor: 0,
} as const;

/** NDR transfer syntax, called NDR32 here (spec a.3). */
export const NDR32_SYNTAX: Readonly<SyntaxId> = { uuid: '8a885d04-1ceb-11c9-9fe8-08002b104860', version: 2 };

/** NDR64 transfer syntax (spec a.3). */
export const NDR64_SYNTAX: Readonly<SyntaxId> = { uuid: '71710533-beba-4937-8319-b5dbef9ccc36', version: 1 };

/** The all-zero syntax a rejected or negotiate_ack result entry carries. */
export const NULL_SYNTAX: Readonly<SyntaxId> = { uuid: '00000000-0000-0000-0000-000000000000', version: 0 };

/**
 * Bind-time feature negotiation: the first 8 wire bytes of the transfer syntax UUID
 * (`6cb71c2c-9812-4540-`); the last 8 bytes are the feature bitmask (spec a.3).
 */
export const BTFN_PREFIX: Readonly<Uint8Array> = Uint8Array.of(
  0x2c,
  0x1c,
  0xb7,
  0x6c,
  0x12,
  0x98,
  0x40,
  0x45,
);
export const BTFN_VERSION = 1;
/** Bitmask[0] bits a host can acknowledge (spec a.3). */
export const BTFN_SECURITY_CONTEXT_MULTIPLEXING = 0x01;
export const BTFN_KEEP_CONNECTION_ON_ORPHAN = 0x02;

export const RPC_VERSION = 5;
export const RPC_VERSION_MINOR = 0;
/** packed_drep of every PDU we send: little-endian integers, ASCII, IEEE floats (spec a.2). */
export const DREP_LE: readonly [number, number, number, number] = [0x10, 0x00, 0x00, 0x00];

export const HEADER_LENGTH = 16;
/** A fault PDU is 32 bytes, and vlmcsd (mimicking Windows) puts 32 in its alloc_hint (spec a.9). */
export const FAULT_LENGTH = 32;
/** The fragment size a Windows host and vlmcs use, and the cap on what we advertise (spec a.3, a.7). */
export const HOST_MAX_FRAG = 5840;
/**
 * The floor of the negotiated fragment size: a client offering less gets 2048 (spec a.7; Samba's
 * server, measured against Windows Server 2012 R2, answers between 2048 and 5840).
 */
export const MIN_NEGOTIATED_FRAG = 2048;
/** frag_length is a u16. */
export const MAX_FRAG_LENGTH = 0xffff;
