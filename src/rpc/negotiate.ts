/**
 * Presentation-context negotiation for bind and alter_context (spec a.4, rules 1-5) and the fragment
 * size of an association (spec a.7). Pure: the same inputs always give the same results.
 */
import {
  CONTEXT_RESULT,
  KMS_INTERFACE,
  MIN_NEGOTIATED_FRAG,
  NDR32_SYNTAX,
  NDR64_SYNTAX,
  NULL_SYNTAX,
  PROVIDER_REASON,
  type SyntaxId,
} from './constants.js';
import { btfnBitmask, type ContextResult, type PresentationContext, type TransferSyntax } from './pdu.js';

export interface HostProfile {
  /** Emulate a host that uses NDR64 (Windows 8 / Server 2012 and later; vlmcsd default). */
  ndr64: boolean;
  /** Acknowledge bind-time feature negotiation (vlmcsd default; its -B0 turns it off). */
  btfn: boolean;
}

export type NdrSyntax = 'ndr32' | 'ndr64';

export interface NegotiationResult {
  /** One result per element, in the order of the elements. */
  results: ContextResult[];
  /**
   * p_cont_id → transfer syntax of every accepted (result 0) element. If an id occurs twice, the last
   * element with it decides (a rejected one removes an earlier acceptance).
   */
  accepted: Map<number, NdrSyntax>;
}

type Verdict = { kind: 'accept'; syntax: NdrSyntax } | { kind: 'btfn'; bitmask0: number } | null;

const isSyntax = (t: TransferSyntax, s: SyntaxId) => t.uuid === s.uuid && t.version === s.version;

function isKmsInterface(c: PresentationContext): boolean {
  return (
    c.abstractSyntax.uuid === KMS_INTERFACE.uuid &&
    c.abstractSyntax.versionMajor === KMS_INTERFACE.versionMajor
  );
}

export function negotiate(contexts: PresentationContext[], profile: HostProfile): NegotiationResult {
  // Rule 3: "if an NDR64 element was offered in the same bind", counting only elements that could
  // accept it (the KMS interface), so an NDR64 offer on a foreign interface cannot cost the client its
  // NDR32 context.
  const ndr64Offered =
    profile.ndr64 &&
    contexts.some((c) => isKmsInterface(c) && c.transferSyntaxes.some((t) => isSyntax(t, NDR64_SYNTAX)));

  const verdictFor = (t: TransferSyntax): Verdict => {
    const bitmask = btfnBitmask(t);
    if (bitmask) return profile.btfn ? { kind: 'btfn', bitmask0: bitmask[0]! & 0x03 } : null; // rule 2
    if (isSyntax(t, NDR64_SYNTAX)) return profile.ndr64 ? { kind: 'accept', syntax: 'ndr64' } : null; // rules 3, 4
    if (isSyntax(t, NDR32_SYNTAX)) return ndr64Offered ? null : { kind: 'accept', syntax: 'ndr32' }; // rules 3, 4
    return null; // rule 5
  };

  const results: ContextResult[] = [];
  const accepted = new Map<number, NdrSyntax>();
  for (const c of contexts) {
    accepted.delete(c.contextId);
    if (!isKmsInterface(c)) {
      results.push(reject(PROVIDER_REASON.ABSTRACT_SYNTAX_NOT_SUPPORTED)); // rule 1
      continue;
    }
    let verdict: Verdict = null;
    for (const t of c.transferSyntaxes) {
      verdict = verdictFor(t);
      if (verdict) break; // several transfer syntaxes: the first acceptable one
    }
    if (verdict === null) {
      results.push(reject(PROVIDER_REASON.PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED));
    } else if (verdict.kind === 'btfn') {
      results.push({
        result: CONTEXT_RESULT.NEGOTIATE_ACK,
        reason: verdict.bitmask0,
        transferSyntax: { ...NULL_SYNTAX },
      });
    } else {
      const s = verdict.syntax === 'ndr64' ? NDR64_SYNTAX : NDR32_SYNTAX;
      results.push({ result: CONTEXT_RESULT.ACCEPTANCE, reason: 0, transferSyntax: { ...s } });
      accepted.set(c.contextId, verdict.syntax);
    }
  }
  return { results, accepted };
}

function reject(reason: number): ContextResult {
  return { result: CONTEXT_RESULT.PROVIDER_REJECTION, reason, transferSyntax: { ...NULL_SYNTAX } };
}

/**
 * The one fragment size a bind_ack states in both max_xmit_frag and max_recv_frag (spec a.7): the
 * smaller of the client's two, raised to 2048, capped by ours (what this host accepts and sends),
 * rounded down to a multiple of 8. With ours ≥ 2048 (5840 by default) this is
 * max(2048, min(client xmit, client recv, ours)) rounded down to 8. Both sides then send and receive
 * fragments of at most this size, as Windows servers answer [observed through Samba's server, which
 * matches them].
 */
export function negotiateFragSize(clientXmit: number, clientRecv: number, ours: number): number {
  const offered = Math.max(MIN_NEGOTIATED_FRAG, Math.min(clientXmit, clientRecv));
  return Math.min(offered, ours) & ~7;
}
