/**
 * One TCP connection of the KMS host, sans-io in the manner of h11's and quinn-proto's `Connection`:
 * client bytes, `now` and the driver's count of bytes not yet taken by the kernel go in; actions come
 * out (send bytes, stop / resume reading, wait for the commit group, close with a reason) together
 * with the next deadline. No socket, timer or clock read here: the driver (src/server/tcp.ts) carries
 * the actions out, reads the socket, and arms one timer for `deadline`.
 *
 * What the connection owns: the RPC association (spec a.10), the request count, the unsent-bytes
 * accounting, the paused state and the input cap. Its memory is bounded whatever the client does:
 * the association holds at most one PDU being assembled (maxPduSize) and one fragmented call
 * (maxCallSize); while a call waits (its commit group, an injected delay) reading stops at once, so
 * at most the chunk already read waits here (maxQueuedInput is the backstop for a driver that keeps
 * feeding); and the answers waiting for the client are capped by maxUnsentBytes.
 */
import type { Association, AssociationAction, RpcCall } from '../rpc/association.js';
import { CONTEXT_RESULT, NCA_STATUS, NULL_SYNTAX, PROVIDER_REASON, PTYPE } from '../rpc/constants.js';
import { encodePdu } from '../rpc/encode.js';
import { type BindAckPdu, makeBindNak } from '../rpc/pdu.js';
import type { BindFault, Delivery } from './fault-seam.js';
import type { ServerLimits } from './limits.js';

/** Why a connection ended. */
export type CloseReason =
  /** The association closed it: a protocol error, or an answer that ends the association. */
  | 'protocol'
  | 'idle'
  | 'lifetime'
  /** The answers waiting for the client passed maxUnsentBytes. */
  | 'unread'
  | 'request-limit'
  /** Input kept arriving while reading was stopped, past maxQueuedInput. */
  | 'input-overflow'
  /** An injected fault ended it. */
  | 'fault'
  /** A bug in the host (the association threw): the connection is dropped, the host keeps serving. */
  | 'bug'
  /** The driver's reasons: the connection cap made room for a new one; the client closed; shutdown. */
  | 'evicted'
  | 'peer'
  | 'shutdown';

/** How the driver closes: FIN after what is queued, at once, or once what is queued is written. */
export type CloseMode = 'end' | 'destroy' | 'flush-destroy';

export type ConnectionAction =
  | { type: 'send'; bytes: Uint8Array }
  /** Stop reading the socket (input waits in the kernel); 'resume' reads on. */
  | { type: 'pause' }
  | { type: 'resume' }
  /** The calls just staged wait for their commit group: call `committed()` once it is committed. */
  | { type: 'commit' }
  /** One log line about this connection's input. */
  | { type: 'note'; level: 'info' | 'warn'; message: string }
  | { type: 'close'; reason: CloseReason; mode: CloseMode; detail?: string; code?: string };

/** A call run by the handler whose answer waits for its commit group. */
export interface StagedCall {
  readonly delivery: Delivery | null;
  /** Size of its answer PDU, for the unsent-bytes projection. */
  readonly size: number;
}

export interface Answer {
  bytes: Uint8Array;
  delivery: Delivery | null;
}

/** The KMS side of the connection (src/server/calls.ts): runs calls, decides bind faults. */
export interface CallHandler {
  /** A bind_ack is about to be sent: the injected bind fault, if any. */
  bind(conn: Connection): BindFault | null;
  /** Runs `call` now; its store change joins the open commit group. */
  stage(conn: Connection, call: RpcCall): StagedCall;
  /** The answer to a staged call, once its group is committed (or failed). */
  finish(conn: Connection, staged: StagedCall): Answer;
}

export interface ConnectionOptions {
  id: number;
  /** `address:port` of the client. */
  peer: string;
  /** The client's address alone (its log-line share is per address: edge-log.ts). Default: from `peer`. */
  address?: string;
  now: number;
  limits: ServerLimits;
  /**
   * Makes the connection's association, on its first bytes: a connection that never sends any (an idle
   * flood) costs no framer, assembler or context table (docs/robustness.md §1).
   */
  newAssociation: () => Association;
  handler: CallHandler;
}

/**
 * Empties an array that is reused every step, keeping its backing store: `length = 0` drops it, and the
 * next push allocates a new one. For arrays that live as long as the server (the turn's); a
 * connection's own arrays drop theirs (see `settle`).
 */
export function empty(a: unknown[]): void {
  while (a.length > 0) a.pop();
}

/** The address part of `address:port` (IPv6 too: the port follows the last colon); else all of it. */
function addressOf(peer: string): string {
  const i = peer.lastIndexOf(':');
  return i < 0 ? peer : peer.slice(0, i);
}

const PAUSE: ConnectionAction = { type: 'pause' };
const RESUME: ConnectionAction = { type: 'resume' };
const COMMIT: ConnectionAction = { type: 'commit' };
const NO_ACTIONS: AssociationAction[] = [];

enum Wait {
  None = 0,
  Commit = 1,
  Delay = 2,
}

/** What runs when an injected delay ends. */
type Held =
  | { kind: 'bind'; fault: BindFault; ack: BindAckPdu; bytes: Uint8Array }
  | { kind: 'answer'; answer: Answer };

export class Connection {
  readonly id: number;
  readonly peer: string;
  /** The client's address, without the port. */
  readonly address: string;
  /** When it was accepted (edge clock). */
  readonly openedAt: number;
  /** Calls run (staged) on this connection. */
  requests = 0;
  /** Calls answered, in order; the request limit counts these. */
  answered = 0;
  private readonly limits: ServerLimits;
  private assoc: Association | null = null;
  private readonly newAssociation: () => Association;
  private readonly handler: CallHandler;
  /** Actions of the current step, handed to the driver (reused: valid until the next input). */
  private readonly out: ConnectionAction[] = [];
  /** The association actions being carried out, from `at` on. */
  private actions: AssociationAction[] = NO_ACTIONS;
  private at = 0;
  /** `staged[i]`: the call at actions[i] was run ahead of its turn and only needs answering. */
  private readonly staged: (StagedCall | undefined)[] = [];
  /** Client chunks read while a call waited; reading is stopped while any wait here. */
  private readonly inbox: Uint8Array[] = [];
  private inboxBytes = 0;
  private wait = Wait.None;
  private held: Held | null = null;
  private delayUntil = Number.POSITIVE_INFINITY;
  private idleAt: number;
  private readonly endOfLife: number;
  private readingPaused = false;
  private unsent = 0;
  private contextsRejected = false;
  private closedBy: CloseReason | null = null;

  constructor(o: ConnectionOptions) {
    this.id = o.id;
    this.peer = o.peer;
    this.address = o.address ?? addressOf(o.peer);
    this.openedAt = o.now;
    this.limits = o.limits;
    this.newAssociation = o.newAssociation;
    this.handler = o.handler;
    this.idleAt = o.now + o.limits.idleTimeoutMs;
    this.endOfLife = o.now + o.limits.maxConnectionLifetimeMs;
  }

  /** The association, for the handler's encoders (respond / fault). */
  get association(): Association {
    if (this.assoc === null) this.assoc = this.newAssociation();
    return this.assoc;
  }

  get closeReason(): CloseReason | null {
    return this.closedBy;
  }

  /** Whether reading is stopped (a call waits and input is queued behind it). */
  get paused(): boolean {
    return this.readingPaused;
  }

  /** Bytes held for this connection beyond the association's own PDU and call buffers. */
  get queuedInputBytes(): number {
    return this.inboxBytes;
  }

  /** Bytes of the association's incomplete PDU and fragmented call. */
  get assemblingBytes(): number {
    return this.assoc === null ? 0 : this.assoc.pendingBytes;
  }

  /** Bytes sent and, as far as the connection knows, not yet taken by the kernel. */
  get unsentBytes(): number {
    return this.unsent;
  }

  /**
   * When `timeout` has something to do (ms, edge clock): the end of an injected delay, else the idle
   * timeout; never after the lifetime. Infinity once closed. The idle timeout does not run while the
   * host itself holds an answer back.
   */
  get deadline(): number {
    if (this.closedBy !== null) return Number.POSITIVE_INFINITY;
    const t = this.wait === Wait.Delay ? this.delayUntil : this.idleAt;
    return Math.min(t, this.endOfLife);
  }

  /**
   * Client bytes. `unsent`: what the driver's socket still holds of earlier sends (writableLength);
   * every send of this step adds to it. Returns this step's actions (reused: use them before the next
   * call).
   */
  receive(chunk: Uint8Array, now: number, unsent: number): readonly ConnectionAction[] {
    this.begin(unsent);
    if (this.closedBy !== null) return this.out;
    if (this.wait !== Wait.None) this.queue(chunk);
    else {
      this.feed(chunk, now);
      this.pump(now);
    }
    return this.out;
  }

  /** The commit group the staged calls were in is committed (or failed): answer them. */
  committed(now: number, unsent: number): readonly ConnectionAction[] {
    this.begin(unsent);
    if (this.wait !== Wait.Commit) return this.out;
    this.wait = Wait.None;
    if (this.closedBy !== null) {
      // Nothing to write to, but these calls were run: finish them so they are observed and logged.
      for (const s of this.staged) if (s !== undefined) this.handler.finish(this, s);
      this.endBatch();
      return this.out;
    }
    this.pump(now);
    return this.out;
  }

  /** The driver's timer fired (at or after `deadline`). */
  timeout(now: number, unsent: number): readonly ConnectionAction[] {
    this.begin(unsent);
    if (this.closedBy !== null) return this.out;
    if (now >= this.endOfLife) {
      this.close('lifetime', 'destroy');
    } else if (this.wait === Wait.Delay) {
      if (now >= this.delayUntil) this.endDelay(now);
    } else if (now >= this.idleAt) {
      this.close('idle', 'destroy');
    }
    return this.out;
  }

  /**
   * The driver has carried out this step's actions: let go of them, so a connection waiting for its
   * client's next PDU does not keep its last answer's bytes.
   */
  settle(): void {
    // Backing store and all: kept between steps it would be copied and promoted with every open
    // connection, which costs the collector more than a fresh one per step.
    this.out.length = 0;
  }

  /** The driver closed the socket (or the client did): nothing more is sent. */
  abort(reason: CloseReason): void {
    if (this.closedBy === null) this.closedBy = reason;
    this.inbox.length = 0;
    this.inboxBytes = 0;
    this.held = null;
  }

  // -------------------------------------------------------------------------------------------------

  private begin(unsent: number): void {
    empty(this.out);
    this.unsent = unsent;
  }

  private queue(chunk: Uint8Array): void {
    if (this.inboxBytes + chunk.length > this.limits.maxQueuedInput) {
      this.close('input-overflow', 'destroy');
      return;
    }
    this.inbox.push(chunk);
    this.inboxBytes += chunk.length;
    if (!this.readingPaused) {
      this.readingPaused = true;
      this.out.push(PAUSE);
    }
  }

  private feed(chunk: Uint8Array, now: number): void {
    let actions: AssociationAction[];
    try {
      actions = this.association.receive(chunk);
    } catch {
      // The association only throws on a bug; drop this connection, keep serving everyone else.
      this.close('bug', 'destroy', 'association failed');
      return;
    }
    // A complete PDU (or bad input the association answered) re-arms the idle timeout.
    if (actions.length > 0) this.idleAt = now + this.limits.idleTimeoutMs;
    this.actions = actions;
    this.at = 0;
  }

  /** Carries out the current actions, then the queued input, until a wait or the end; resumes reading. */
  private pump(now: number): void {
    for (;;) {
      this.run(now);
      if (this.closedBy !== null || this.wait !== Wait.None || this.inbox.length === 0) break;
      const chunk = this.inbox.shift()!;
      this.inboxBytes -= chunk.length;
      this.feed(chunk, now);
    }
    if (this.readingPaused && this.closedBy === null && this.wait === Wait.None) {
      this.readingPaused = false;
      this.out.push(RESUME);
    }
  }

  private run(now: number): void {
    const actions = this.actions;
    while (this.at < actions.length) {
      if (this.closedBy !== null || this.wait !== Wait.None) return;
      const i = this.at++;
      const a = actions[i]!;
      switch (a.type) {
        case 'send':
          if (a.pdu.type === PTYPE.BIND_ACK) this.bindAck(a.pdu, a.bytes, now);
          else this.send(a.bytes);
          break;
        case 'call':
          this.call(a.call, i, now);
          break;
        case 'close':
          this.close('protocol', 'end', a.reason, a.error?.code);
          break;
        case 'note':
          this.out.push(a);
          break;
      }
    }
    if (this.wait === Wait.None) this.endBatch();
  }

  private endBatch(): void {
    this.actions = NO_ACTIONS;
    this.at = 0;
    this.staged.length = 0;
  }

  private call(call: RpcCall, i: number, now: number): void {
    const pre = this.staged[i];
    if (pre !== undefined) {
      this.staged[i] = undefined;
      this.answer(this.handler.finish(this, pre), now);
      return;
    }
    this.requests += 1;
    if (this.contextsRejected) {
      this.answer({ bytes: this.association.fault(call, NCA_STATUS.UNK_IF), delivery: null }, now);
      return;
    }
    this.stage(call, i);
  }

  /**
   * Runs this call now and the batch's later calls too, so a client sending several requests at once
   * is served at the pace it sends; all are answered once their commit group is committed. Staging
   * stops where the calls that follow might not run at all: after an injected fault, at the request
   * limit, and before the projected answers would take the unsent bytes past maxUnsentBytes (a client
   * that reads gets the rest in the next turn; one that does not is dropped at the answer that crosses).
   */
  private stage(call: RpcCall, i: number): void {
    const limits = this.limits;
    const actions = this.actions;
    let s = this.handler.stage(this, call);
    this.staged[i] = s;
    let projected = this.unsent + s.size;
    for (let j = i + 1; j < actions.length; j++) {
      const b = actions[j]!;
      if (b.type !== 'call') continue;
      if (s.delivery !== null || this.requests >= limits.maxRequestsPerConnection) break;
      if (projected + s.size > limits.maxUnsentBytes) break;
      this.requests += 1;
      s = this.handler.stage(this, b.call);
      this.staged[j] = s;
      projected += s.size;
    }
    this.at = i;
    this.wait = Wait.Commit;
    this.out.push(COMMIT);
  }

  private answer(answer: Answer, now: number): void {
    this.answered += 1;
    const delay = answer.delivery?.delayMs ?? 0;
    if (delay > 0) {
      this.hold({ kind: 'answer', answer }, now + delay);
      return;
    }
    this.deliver(answer);
  }

  private deliver(answer: Answer): void {
    if (answer.delivery?.closeMidResponse) {
      const bytes = answer.bytes;
      this.out.push({ type: 'send', bytes: bytes.subarray(0, Math.max(1, bytes.length >> 1)) });
      this.close('fault', 'flush-destroy', answer.delivery.name);
      return;
    }
    this.send(answer.bytes);
    if (this.closedBy === null && this.answered >= this.limits.maxRequestsPerConnection) {
      // Later calls already read are neither run nor counted.
      this.close('request-limit', 'end');
    }
  }

  private bindAck(ack: BindAckPdu, bytes: Uint8Array, now: number): void {
    const f = this.handler.bind(this);
    if (f === null) {
      this.send(bytes);
      return;
    }
    this.out.push({
      type: 'note',
      level: 'info',
      message: `bind answered with an injected fault (${f.name})`,
    });
    if (f.delayMs !== undefined && f.delayMs > 0) {
      this.hold({ kind: 'bind', fault: f, ack, bytes }, now + f.delayMs);
      return;
    }
    this.faultedBind(f, ack, bytes);
  }

  private faultedBind(f: BindFault, ack: BindAckPdu, bytes: Uint8Array): void {
    if (f.bindNak !== undefined) {
      this.send(encodePdu(makeBindNak(ack.callId, f.bindNak)));
      this.close('fault', 'end', f.name);
      return;
    }
    let out = bytes;
    if (f.rejectContexts) {
      this.contextsRejected = true;
      out = encodePdu({
        ...ack,
        results: ack.results.map(() => ({
          result: CONTEXT_RESULT.PROVIDER_REJECTION,
          reason: PROVIDER_REASON.PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED,
          transferSyntax: { uuid: NULL_SYNTAX.uuid, version: NULL_SYNTAX.version },
        })),
      });
    }
    this.send(out);
    if (f.closeAfterBind) this.close('fault', 'end', f.name);
  }

  private hold(held: Held, until: number): void {
    this.held = held;
    this.delayUntil = until;
    this.wait = Wait.Delay;
  }

  private endDelay(now: number): void {
    const h = this.held!;
    this.held = null;
    this.wait = Wait.None;
    this.delayUntil = Number.POSITIVE_INFINITY;
    this.idleAt = now + this.limits.idleTimeoutMs;
    if (h.kind === 'bind') this.faultedBind(h.fault, h.ack, h.bytes);
    else this.deliver(h.answer);
    if (this.closedBy === null) this.pump(now);
  }

  private send(bytes: Uint8Array): void {
    this.out.push({ type: 'send', bytes });
    this.unsent += bytes.length;
    // Checked after every send: over the cap by at most one answer. Nothing after it runs.
    if (this.unsent > this.limits.maxUnsentBytes) this.close('unread', 'destroy');
  }

  private close(reason: CloseReason, mode: CloseMode, detail?: string, code?: string): void {
    if (this.closedBy !== null) return;
    this.closedBy = reason;
    this.inbox.length = 0;
    this.inboxBytes = 0;
    const a: ConnectionAction = { type: 'close', reason, mode };
    if (detail !== undefined) a.detail = detail;
    if (code !== undefined) a.code = code;
    this.out.push(a);
  }
}
