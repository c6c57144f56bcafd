import type { FileTime } from '../wire/filetime.js';
import type { Guid } from '../wire/guid.js';

export type KmsVersion = 4 | 5 | 6;
export type NdrSyntax = 'ndr32' | 'ndr64';

/** The 236-byte base request, identical in V4, V5 and V6 (spec c.1). */
export interface KmsRequestBody {
  minorVersion: number;
  majorVersion: number;
  /** Non-zero when the client is a virtual machine. */
  vmInfo: number;
  licenseStatus: number;
  /** Minutes remaining in the current license state. */
  bindingExpiration: number;
  applicationId: Guid;
  /** ActivationId: the client's exact edition. */
  skuId: Guid;
  /** KmsCountedId: the product group the host accepts or refuses. */
  kmsId: Guid;
  cmid: Guid;
  /** N_Policy: the threshold this client needs. */
  requiredClientCount: number;
  clientTime: FileTime;
  previousCmid: Guid;
  workstation: string;
}

/** The base response (spec c.2). */
export interface KmsResponseBody {
  minorVersion: number;
  majorVersion: number;
  epid: string;
  cmid: Guid;
  clientTime: FileTime;
  currentCount: number;
  activationInterval: number;
  renewalInterval: number;
}

/** What the host keeps of a decoded request to build its answer (spec c.4: Q is needed). */
export interface DecodedRequest {
  version: KmsVersion;
  body: KmsRequestBody;
  /** V5/V6: the first block of the request decrypted with a zero IV. */
  q: Uint8Array | null;
  /** V5/V6: the clear-text IV of the request. */
  iv: Uint8Array | null;
  /** V4: the MAC matched; V5/V6: the PKCS#7 pad was 04 04 04 04. */
  integrityOk: boolean;
}

/** What the client keeps of the request it sent, to verify the answer. */
export interface RequestContext {
  version: KmsVersion;
  minorVersion: number;
  cmid: Guid;
  clientTime: FileTime;
  /** V5/V6 only. */
  iv: Uint8Array | null;
  q: Uint8Array | null;
}

/** A response decoded and verified by a client (spec c.2–c.6). */
export interface VerifiedResponse {
  version: KmsVersion;
  body: KmsResponseBody;
  /** V6 only. */
  hwid: Uint8Array | null;
  /** V6: which time slot (−1, 0, +1) matched the HMAC. */
  hmacSlot: number | null;
}
