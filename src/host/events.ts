import type { KmsVersion, NdrSyntax } from '../kms/messages.js';
import type { Guid } from '../wire/guid.js';

/**
 * One activation request as the host saw and answered it: the fields of a genuine host's event
 * 12290 (spec f.7) plus what kmslab adds (application, KMS id, protocol, count, ePID, decision).
 */
export interface ActivationEvent {
  type: 'activation';
  seq: number;
  time: number;
  connectionId: number;
  peer: string;
  // 12290 fields
  hresult: number;
  requiredCount: number;
  workstation: string;
  cmid: Guid;
  clientTime: string;
  vm: boolean;
  licenseStatus: number;
  bindingExpiration: number;
  skuId: Guid;
  // kmslab additions
  previousCmid: Guid;
  applicationId: Guid;
  kmsId: Guid;
  productName: string | null;
  protocol: KmsVersion;
  ndr: NdrSyntax;
  count: number;
  epid: string;
  /** The client would activate: count ≥ RequiredClientCount and no error. The decision is the client's. */
  wouldActivate: boolean;
  /** Why: 'activated', 'count-insufficient' (the client will report 0xC004F038), or the refusal. */
  decision: 'activated' | 'count-insufficient' | 'refused';
  reason: string;
  /**
   * The label of a decision imposed on this request (see `Imposed` in host.ts), else null. The host
   * gives it no meaning; the lab harness puts the name of the fault rule that shaped the answer here
   * (the field keeps its published name).
   */
  fault: string | null;
}
