/** What the TCP edge reports: observations for metrics and dashboards, and its running counts. */
import type { CallOutcome } from '../host/service.js';
import type { CloseReason } from './connection.js';

/** What happened on the wire, for metrics and dashboards (never changes behaviour). */
export type ServerObservation =
  | { kind: 'connection-open'; connectionId: number; peer: string }
  | { kind: 'connection-close'; connectionId: number; peer: string; reason: CloseReason }
  | { kind: 'connection-rejected'; peer: string; reason: 'limit' | 'fault' }
  | { kind: 'bind'; connectionId: number }
  | { kind: 'call'; connectionId: number; outcome: CallOutcome; durationMs: number; ndr: 'ndr32' | 'ndr64' }
  | { kind: 'protocol-error'; connectionId: number; code: string }
  /** A call that failed for a reason other than bad input (e.g. the store): answered with a fault. */
  | { kind: 'call-error'; connectionId: number; error: Error };

export interface ServerStats {
  open: number;
  accepted: number;
  rejected: number;
  /** Connections closed to make room at the cap (see ServerLimits.maxConnections). */
  evicted: number;
  binds: number;
  faults: number;
  closedByError: number;
}
