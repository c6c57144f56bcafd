/**
 * `kmslab/protocol`: the sans-io codecs. KMS V4/V5/V6 requests and responses (encode, decode, verify),
 * their NDR stubs, DCE/RPC PDUs and framing, HRESULTs, ePIDs, GUIDs and FILETIMEs. Bytes in, values out;
 * malformed input throws `ProtocolError` with a code.
 */

export { decodeRequest, encodeRequest, encodeResponse, verifyResponse } from '../kms/envelope.js';
export { type EpidParts, formatEpid, isValidEpid, parseEpid } from '../kms/epid.js';
export { HResult, hresultHex, hresultText, parseHResult } from '../kms/hresult.js';
export type {
  DecodedRequest,
  KmsRequestBody,
  KmsResponseBody,
  KmsVersion,
  NdrSyntax,
  RequestContext,
  VerifiedResponse,
} from '../kms/messages.js';
export {
  unwrapRequestStub,
  unwrapResponseStub,
  wrapErrorStub,
  wrapRequestStub,
  wrapResponseStub,
} from '../kms/stub.js';
export { NCA_STATUS, PTYPE } from '../rpc/constants.js';
export { decodePdu } from '../rpc/decode.js';
export { encodePdu } from '../rpc/encode.js';
export { Framer } from '../rpc/framer.js';
export type { Pdu } from '../rpc/pdu.js';
export { isProtocolError, ProtocolError } from '../wire/errors.js';
export { type FileTime, fileTimeFromMs, fileTimeToMs } from '../wire/filetime.js';
export { type Guid, parseGuid } from '../wire/guid.js';
