/**
 * The one fault seam: what a fault injector may change in how the server answers, at five
 * interception points, in the order a connection meets them:
 *
 * 1. accept: refuse a connection as soon as it is accepted (src/server/tcp.ts);
 * 2. bind: delay, nak, reject the contexts of, or close after a bind_ack (src/server/connection.ts);
 * 3. result: the host's decision for a decoded request, carried out by the host as a `CallShaping`
 *    (KmsService.handleCall), which knows it only as an imposed answer;
 * 4. stub: the encoded response stub, rewritten before the RPC response is built (src/server/calls.ts);
 * 5. delivery: delay the answer, or write half of it and close (src/server/connection.ts).
 *
 * Types only: the server does not import the harness, whose FaultEngine (src/harness/faults.ts)
 * implements FaultSeam from fault rules, one descriptor per action. kms/, host/ and rpc/ know no
 * faults. A server without a seam pays one property read per connection and per call.
 */
import type { CallInfo, CallShaping } from '../host/service.js';
import type { KmsRequestBody, KmsVersion, NdrSyntax } from '../kms/messages.js';

/** Bind point: what faults do to one bind (decided when a bind_ack is about to be sent). */
export interface BindFault {
  /** The rules that fired ('a+b'), for the log line and the close reason. */
  name: string;
  /** Hold the answer this long (edge-clock ms); input on the connection waits behind it. */
  delayMs?: number;
  /** Send the bind_ack, then close the connection. */
  closeAfterBind?: boolean;
  /** Answer a bind_nak with this p_reject_reason instead of the bind_ack, then close. */
  bindNak?: number;
  /**
   * Answer every presentation context with provider_rejection / proposed_transfer_syntaxes_not_supported
   * (2/2); a request sent anyway gets a fault nca_s_unk_if.
   */
  rejectContexts?: boolean;
}

/** Delivery point: how the answer of one call goes out. */
export interface Delivery {
  /** The rules that fired ('a+b'). */
  name: string;
  /** Hold the answer this long (edge-clock ms); input on the connection waits behind it. */
  delayMs?: number;
  /** Write the first half of the answer PDU, then drop the connection. */
  closeMidResponse?: boolean;
}

/**
 * Stub point: returns the response stub to send instead of `stub` (it may change it in place).
 * Called only for a KMS answer that carries a message (HRESULT 0), not for error stubs or RPC faults.
 */
export type StubRewrite = (stub: Uint8Array, protocol: KmsVersion, ndr: NdrSyntax) => Uint8Array;

/** What faults do to one call, by interception point (decided once its request is decoded). */
export interface CallFault {
  /** The rules that fired ('a+b'). */
  name: string;
  /** Result point, carried out by the host (its `label` is the event's `fault`). */
  result: CallShaping;
  stub: StubRewrite | null;
  /** Always present when a call fault fired: the connection stops running calls ahead after it. */
  delivery: Delivery;
}

export interface FaultSeam {
  /** Accept point: false refuses the connection. */
  accept(peer: string): boolean;
  /** Bind point (peer, connection, time only: no KMS field is known yet). */
  bind(info: { peer: string; connectionId: number }): BindFault | null;
  /** A decoded request (never the health probe): what faults do to it, or null. */
  call(req: KmsRequestBody, info: CallInfo): CallFault | null;
}
