/**
 * The KMS side of every connection (the `CallHandler` of src/server/connection.ts): runs calls through
 * the service into one commit group per event-loop turn, decides bind faults, and makes the answers.
 *
 * Group commit: calls are run as their PDUs arrive, but their store changes go into the turn's group
 * and their answers wait: at the end of the turn the group is committed in one store transaction, then
 * the answers are written back to back. A response is therefore never written before its CMID is
 * committed (the guarantee of src/store/sqlite.ts), and one SQLite transaction serves every call of
 * the turn. The connections waiting meanwhile have stopped reading (see Connection).
 *
 * Faults (src/server/fault-seam.ts) enter here at three of their points: bind, result (handed to the
 * host as its CallShaping) and stub; the delivery part rides on the answer to the Connection. Without
 * a seam a call costs nothing more.
 */
import type { Logger } from 'pino';
import type { CallOutcome, CallShaper, CommitGroup, KmsService } from '../host/service.js';
import type { RpcCall } from '../rpc/association.js';
import type { Answer, CallHandler, Connection, StagedCall } from './connection.js';
import type { EdgeLog } from './edge-log.js';
import type { BindFault, CallFault, Delivery } from './fault-seam.js';
import type { ServerHooks, ServerObservation, ServerStats } from './tcp.js';

/** Sizes of a response PDU's header and of a fault PDU (spec a.7, a.9). */
const RESPONSE_HEADER = 24;
const FAULT_SIZE = 32;
/** nca_s_comm_failure-like status for a call that failed for a reason other than bad input. */
const SERVER_ERROR = 0x1c010001;

/** One call run ahead of its answer (one object per call, no closure). */
class Staged implements StagedCall {
  constructor(
    readonly call: RpcCall,
    /** null: the service threw (`error`). */
    readonly outcome: CallOutcome | null,
    readonly error: unknown,
    /** The group its change was staged in and its index there; index -1 when nothing was staged. */
    readonly group: CommitGroup | null,
    readonly index: number,
    readonly durationMs: number,
    readonly delivery: Delivery | null,
    readonly size: number,
  ) {}
}

/** What the runner needs of the server. */
export interface CallContext {
  readonly service: KmsService;
  readonly logger: Logger;
  readonly edgeLog: EdgeLog;
  readonly hooks: ServerHooks;
  readonly stats: ServerStats;
  /** Whether anyone observes (durations are measured only then). */
  readonly observed: boolean;
  emit(o: ServerObservation): void;
}

export class CallRunner implements CallHandler {
  private group: CommitGroup | null = null;
  /** The seam's fault for the call being run: set by `shaper`, taken right after handleCall. */
  private fault: CallFault | null = null;
  /** The result point, handed to the host (one closure for every call). */
  private readonly shaper: CallShaper = (req, info) => {
    const f = this.ctx.hooks.faults?.call(req, info) ?? null;
    this.fault = f;
    return f === null ? null : f.result;
  };
  constructor(private readonly ctx: CallContext) {}

  /** Calls staged in the open group (0: nothing to commit). */
  get pending(): number {
    return this.group?.size ?? 0;
  }

  /** Commits the open group; a failure is kept in the group and each staged call answers a fault. */
  commit(): void {
    const group = this.group;
    this.group = null;
    if (group === null) return;
    try {
      this.ctx.service.commitGroup(group);
    } catch {
      // Kept in the group: finish() answers each of its calls with a fault.
    }
  }

  bind(conn: Connection): BindFault | null {
    const ctx = this.ctx;
    ctx.stats.binds += 1;
    if (ctx.observed) ctx.emit({ kind: 'bind', connectionId: conn.id });
    return ctx.hooks.faults?.bind({ peer: conn.peer, connectionId: conn.id }) ?? null;
  }

  stage(conn: Connection, call: RpcCall): StagedCall {
    const ctx = this.ctx;
    const service = ctx.service;
    if (this.group === null) this.group = service.openGroup();
    const group = this.group;
    const started = ctx.observed ? performance.now() : 0;
    const index = group.size;
    let outcome: CallOutcome;
    let fault: CallFault | null = null;
    try {
      outcome = service.handleCall(
        call.stub,
        call.syntax,
        { peer: conn.peer, connectionId: conn.id },
        ctx.hooks.faults === undefined ? undefined : this.shaper,
        group,
      );
      fault = this.fault;
      this.fault = null;
      // Stub point: only an answer that carries a KMS message (not an error stub, not an RPC fault).
      if (fault?.stub && outcome.kind === 'response' && outcome.event !== null && outcome.event.hresult === 0)
        outcome.stub = fault.stub(outcome.stub, outcome.event.protocol, call.syntax);
    } catch (e) {
      this.fault = null;
      return new Staged(call, null, e, null, -1, 0, null, FAULT_SIZE);
    }
    const durationMs = ctx.observed ? performance.now() - started : 0;
    // The answer's size (a single-fragment response, or a 32-byte fault), for the unsent-bytes cap.
    const size = outcome.kind === 'response' ? RESPONSE_HEADER + outcome.stub.length : FAULT_SIZE;
    const staged = group.size > index;
    return new Staged(
      call,
      outcome,
      null,
      staged ? group : null,
      staged ? index : -1,
      durationMs,
      fault === null ? null : fault.delivery,
      size,
    );
  }

  /** Observed and logged here, so observers never see a call whose change did not reach the store. */
  finish(conn: Connection, staged: StagedCall): Answer {
    const s = staged as Staged;
    if (s.outcome === null) return this.failed(conn, s.call, s.error);
    const failure = s.group !== null ? s.group.failure(s.index) : null;
    if (failure !== null && failure !== undefined) return this.failed(conn, s.call, failure);
    return this.done(conn, s);
  }

  private done(conn: Connection, s: Staged): Answer {
    const ctx = this.ctx;
    const outcome = s.outcome!;
    try {
      if (ctx.observed) {
        ctx.emit({
          kind: 'call',
          connectionId: conn.id,
          outcome,
          durationMs: s.durationMs,
          ndr: s.call.syntax,
        });
      }
      // Bounded (limits.maxActivationLogLinesPerSecond); the level check first keeps a warn-level host
      // from reading the clock for lines it would not write.
      if (outcome.event && ctx.logger.isLevelEnabled('info'))
        ctx.edgeLog.line('activation', 'info', outcome.event, 'activation request', conn.address);
      if (outcome.error) {
        ctx.edgeLog.line(
          'bad-request',
          'warn',
          { peer: conn.peer, connectionId: conn.id, code: outcome.error.code, err: outcome.error.message },
          'bad KMS request',
          conn.address,
        );
      }
      if (outcome.kind === 'fault') {
        ctx.stats.faults += 1;
        return { bytes: conn.association.fault(s.call, outcome.status), delivery: s.delivery };
      }
      return { bytes: conn.association.respond(s.call, outcome.stub), delivery: s.delivery };
    } catch (e) {
      return this.failed(conn, s.call, e);
    }
  }

  /** A store failure or a bug: an RPC fault for this call, and the host keeps serving. */
  private failed(conn: Connection, call: RpcCall, e: unknown): Answer {
    const ctx = this.ctx;
    ctx.logger.error({ err: e, peer: conn.peer, connectionId: conn.id }, 'request failed');
    ctx.emit({ kind: 'call-error', connectionId: conn.id, error: e as Error });
    ctx.stats.faults += 1;
    return { bytes: conn.association.fault(call, SERVER_ERROR), delivery: null };
  }
}
