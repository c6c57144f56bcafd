/**
 * The one error type the sans-io layers throw. `code` says what went wrong in protocol terms, so the
 * layer above can map it to the answer the spec gives (bind_nak, fault PDU, error HRESULT or close).
 */
export type ProtocolErrorCode =
  | 'SHORT_INPUT' // a field runs past the end of the bytes we have
  | 'BAD_VALUE' // a field holds a value the protocol does not allow
  | 'BAD_RPC_VERSION' // rpc_vers != 5 (spec a.2)
  | 'BAD_DREP' // not little-endian / ASCII / IEEE (spec a.2)
  | 'BAD_PTYPE' // connectionless or unknown PDU type (spec a.2)
  | 'BAD_FRAG_LENGTH' // frag_length < 16, over the cap, or inconsistent (spec a.10)
  | 'PDU_TOO_LARGE' // frag_length or a reassembled call over the configured cap
  | 'BAD_FRAGMENT' // fragment sequence broken (spec a.10)
  | 'BAD_STATE' // PDU not allowed in the connection's current state, e.g. request before bind (spec a.10)
  | 'AUTH_NOT_SUPPORTED' // auth_length > 0 (spec a.1)
  | 'BAD_STUB' // NDR stub inconsistent with its own length fields (spec b.1)
  | 'UNSUPPORTED_VERSION' // KMS message version not 4.0, 5.0 or 6.0 (spec c.0)
  | 'BAD_MESSAGE' // KMS message too short or malformed (spec c)
  | 'BAD_PADDING' // V5/V6 PKCS#7 padding wrong after decryption (spec f.8)
  | 'BAD_MAC' // V4 MAC, V6 HMAC or V5/V6 hash check failed (spec c.3, c.5, c.6)
  | 'BAD_ECHO' // response does not echo the request's CMID, time, version or IV (spec c.2, c.5)
  | 'BAD_EPID' // ePID string out of bounds or badly terminated (spec c.2, e.1)
  | 'BAD_CATALOG'; // the product data file fails its checks

export interface ProtocolErrorDetail {
  field?: string;
  offset?: number;
  needed?: number;
  available?: number;
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  readonly field: string | undefined;
  readonly offset: number | undefined;
  readonly needed: number | undefined;
  readonly available: number | undefined;

  constructor(code: ProtocolErrorCode, message: string, detail: ProtocolErrorDetail = {}) {
    super(message);
    this.code = code;
    this.field = detail.field;
    this.offset = detail.offset;
    this.needed = detail.needed;
    this.available = detail.available;
  }
}

export function isProtocolError(e: unknown): e is ProtocolError {
  return e instanceof ProtocolError;
}
