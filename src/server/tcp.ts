import net from 'node:net';
import type { Logger } from 'pino';
import type { Random } from '../host/random.js';
import type { CallFault, CallOutcome, CommitGroup, FaultHook, KmsService } from '../host/service.js';
import { Association, type AssociationAction, type RpcCall } from '../rpc/association.js';
import { CONTEXT_RESULT, NCA_STATUS, NULL_SYNTAX, PROVIDER_REASON, PTYPE } from '../rpc/constants.js';
import { encodePdu } from '../rpc/encode.js';
import { type BindAckPdu, makeBindNak } from '../rpc/pdu.js';

/**
 * The node:net edge. Everything protocol-shaped happens in the sans-io Association (RPC) and
 * KmsService (KMS + host); this file only moves bytes, keeps time limits and counts connections.
 */
export interface ListenAddress {
  host: string;
  port: number;
}

export interface ServerLimits {
  /** Close a connection with no complete PDU for this long (spec a.1: 30 s like vlmcsd). */
  idleTimeoutMs: number;
  /** Concurrent connections; beyond it new ones are closed at once (never queued). */
  maxConnections: number;
  /** Largest PDU accepted (frag_length). */
  maxPduSize: number;
  /** Largest reassembled request stub. */
  maxCallSize: number;
  /** Hard cap on a connection's life, against drip-feeding clients. */
  maxConnectionLifetimeMs: number;
  /** Bytes queued for a client that does not read before it is dropped. */
  maxUnsentBytes: number;
  /** Requests answered on one connection before it is closed. */
  maxRequestsPerConnection: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  idleTimeoutMs: 30_000,
  maxConnections: 1024,
  maxPduSize: 5840,
  maxCallSize: 64 * 1024,
  maxConnectionLifetimeMs: 10 * 60_000,
  maxUnsentBytes: 256 * 1024,
  maxRequestsPerConnection: 1_000_000,
};

/** Hooks the lab harness uses to inject faults at the connection level. */
export interface ServerHooks {
  /** Return false to refuse the connection (e.g. "host down from day 3 to day 9"). */
  acceptConnection?: (peer: string) => boolean;
  /**
   * Bind-level faults, decided when a bind is about to be answered with a bind_ack. No KMS field is
   * known yet, so such a fault can depend on the peer, the connection and the time only.
   */
  bindFault?: (info: { peer: string; connectionId: number }) => BindFault | null;
  /** KMS-level faults for one call (its `delayMs` / `closeMidResponse` are carried out here). */
  callFault?: FaultHook;
  /**
   * Raw tap (record/replay): client bytes as they arrive (chunks, not framed), server bytes as written
   * (whole PDUs; a shorter piece when a fault closes the connection mid-PDU).
   */
  onPdu?: (dir: 'c2s' | 's2c', connectionId: number, bytes: Uint8Array) => void;
}

/** What an injected fault does to one bind (see ServerHooks.bindFault). */
export interface BindFault {
  name: string;
  /** Hold the answer this long (real timer, ms); input on the connection waits behind it. */
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

/** What happened on the wire, for metrics and dashboards (never changes behaviour). */
export type ServerObservation =
  | { kind: 'connection-open'; connectionId: number; peer: string }
  | { kind: 'connection-close'; connectionId: number; peer: string }
  | { kind: 'connection-rejected'; peer: string; reason: 'limit' | 'fault' }
  | { kind: 'bind'; connectionId: number }
  | { kind: 'call'; connectionId: number; outcome: CallOutcome; durationMs: number; ndr: 'ndr32' | 'ndr64' }
  | { kind: 'protocol-error'; connectionId: number; code: string }
  /** A call that failed for a reason other than bad input (e.g. the store): answered with a fault. */
  | { kind: 'call-error'; connectionId: number; error: Error };

export interface ServerOptions {
  listen: ListenAddress[];
  service: KmsService;
  logger: Logger;
  random: Random;
  profile?: { ndr64: boolean; btfn: boolean };
  limits?: Partial<ServerLimits>;
  hooks?: ServerHooks;
  /**
   * The port string put in bind_ack's secondary address (spec a.4). Default: the listening port. A lab
   * host on an ephemeral port sets a fixed one so its transcripts are byte-identical across runs.
   */
  secondaryAddress?: string;
}

/** Sizes of a response PDU's header and of a fault PDU (spec a.7, a.9). */
const RESPONSE_HEADER = 24;
const FAULT_SIZE = 32;

/** A call's answer PDU and the injected fault that shapes its delivery. */
interface Answer {
  bytes: Uint8Array;
  fault: CallFault | null;
}

/** A call handled ahead of its turn to be answered (see run() in accept). */
interface Staged {
  finish: () => Answer;
  /** The call's number on its connection. */
  count: number;
}

export interface ServerStats {
  open: number;
  accepted: number;
  rejected: number;
  binds: number;
  faults: number;
  closedByError: number;
}

export class KmsServer {
  readonly limits: ServerLimits;
  readonly stats: ServerStats = { open: 0, accepted: 0, rejected: 0, binds: 0, faults: 0, closedByError: 0 };
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private nextConnectionId = 1;
  private closing = false;
  hooks: ServerHooks;
  private readonly observers = new Set<(o: ServerObservation) => void>();
  /**
   * Group commit. Calls are handled as their PDUs arrive, but their store changes go into one commit
   * group per event-loop turn and their answers wait: at the end of the turn (setImmediate, i.e. after
   * every socket that was readable in this turn has been read) the group is committed in one store
   * transaction, then the answers are written, back to back. A response is therefore never written
   * before its CMID is committed (the guarantee of src/store/sqlite.ts), one SQLite transaction serves
   * every call of the turn, and the clients are woken by a burst of writes rather than one at a time.
   * A connection waiting for its answer is paused like one under an injected delay (input is queued,
   * order is kept).
   */
  private group: CommitGroup | null = null;
  private turn: (() => void)[] = [];
  private turnScheduled = false;
  /** Whether the pending flush already let the loop poll once more (see flushTurn). */
  private gathered = false;
  /**
   * Sockets written to in this turn outside flushTurn: corked at their first write and uncorked when
   * the turn ends, so every write of a turn reaches the kernel in one burst (a client woken by the
   * first is usually still awake for the next; measured: fewer wake-ups, less CPU on both sides).
   */
  private corked: net.Socket[] = [];
  /** Set while flushTurn writes answers: those go out at once. */
  private flushing = false;
  private readonly flushTurn = (): void => {
    const corked = this.corked;
    if (corked.length > 0) {
      this.corked = [];
      for (const s of corked) s.uncork();
    }
    // Before committing changes, let the event loop poll once more (without blocking: an immediate is
    // pending): requests already on their way join this group. One SQLite transaction then serves
    // about twice as many calls under load (measured: +17-22% requests/s with --store FILE), at the
    // price of one loop iteration of latency.
    if (!this.gathered && this.group !== null && this.group.size > 0) {
      this.gathered = true;
      setImmediate(this.flushTurn);
      return;
    }
    this.gathered = false;
    this.turnScheduled = false;
    const group = this.group;
    this.group = null;
    const queue = this.turn;
    this.turn = [];
    if (group) {
      try {
        this.opts.service.commitGroup(group);
      } catch {
        // Kept in the group: each staged call is answered with a fault (see stageCall).
      }
    }
    this.flushing = true;
    try {
      for (const fn of queue) fn();
    } finally {
      this.flushing = false;
    }
  };

  observe(fn: (o: ServerObservation) => void): () => void {
    this.observers.add(fn);
    return () => this.observers.delete(fn);
  }

  private emit(o: ServerObservation): void {
    for (const fn of this.observers) fn(o);
  }

  constructor(private readonly opts: ServerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.hooks = opts.hooks ?? {};
  }

  /** Listens on every address; resolves with the bound addresses (port 0 → the ephemeral port). */
  async start(): Promise<ListenAddress[]> {
    const bound: ListenAddress[] = [];
    for (const a of this.opts.listen) {
      // An accepted socket's local port is the listener's: its decimal string (the bind_ack's secondary
      // address) is made once here instead of asking the kernel for it on every connection.
      let port: string | undefined;
      const server = net.createServer({ noDelay: true }, (s) => this.accept(s, port));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: a.host, port: a.port, exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (e) => this.opts.logger.error({ err: e }, 'listener error'));
      const addr = server.address() as net.AddressInfo;
      port = String(addr.port);
      bound.push({ host: addr.address, port: addr.port });
      this.servers.push(server);
    }
    return bound;
  }

  get addresses(): ListenAddress[] {
    return this.servers.map((s) => {
      const a = s.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
    });
  }

  private accept(socket: net.Socket, listenPort?: string): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const log = this.opts.logger;
    if (this.closing || this.sockets.size >= this.limits.maxConnections) {
      this.stats.rejected += 1;
      log.warn({ peer, open: this.sockets.size }, 'connection refused: connection limit reached');
      this.emit({ kind: 'connection-rejected', peer, reason: 'limit' });
      socket.destroy();
      return;
    }
    if (this.hooks.acceptConnection && !this.hooks.acceptConnection(peer)) {
      this.stats.rejected += 1;
      log.info({ peer }, 'connection refused by an injected fault');
      this.emit({ kind: 'connection-rejected', peer, reason: 'fault' });
      socket.destroy();
      return;
    }
    const connectionId = this.nextConnectionId++;
    this.sockets.add(socket);
    this.stats.accepted += 1;
    this.stats.open = this.sockets.size;
    this.emit({ kind: 'connection-open', connectionId, peer });
    const assoc = new Association({
      profile: this.opts.profile ?? { ndr64: true, btfn: true },
      secondaryAddress: this.opts.secondaryAddress ?? listenPort ?? String(socket.localPort ?? 1688),
      maxPduSize: this.limits.maxPduSize,
      maxCallSize: this.limits.maxCallSize,
      newAssocGroupId: () => (this.opts.random.uint32() | 1) >>> 0,
    });
    let requests = 0;
    /** Set by an injected rejectContexts fault: requests get a fault nca_s_unk_if. */
    let contextsRejected = false;
    /** Set when an injected fault ended the connection: nothing more is read or written. */
    let ended = false;
    const idle = setTimeout(() => {
      log.info({ peer, connectionId }, 'idle timeout: closing connection');
      socket.destroy();
    }, this.limits.idleTimeoutMs);
    const lifetime = setTimeout(() => {
      log.warn({ peer, connectionId }, 'connection lifetime exceeded: closing');
      socket.destroy();
    }, this.limits.maxConnectionLifetimeMs);
    const tap = this.hooks.onPdu;

    const send = (bytes: Uint8Array) => {
      tap?.('s2c', connectionId, bytes);
      this.cork(socket);
      socket.write(bytes);
      if (socket.writableLength > this.limits.maxUnsentBytes) {
        log.warn({ peer, connectionId, unsent: socket.writableLength }, 'client does not read: dropping');
        // Stop here too: calls already read from this client's input are neither run nor counted.
        ended = true;
        socket.destroy();
      }
    };
    const end = () => {
      ended = true;
      socket.end();
    };

    // An injected delay, or a call waiting for the end-of-turn commit, pauses the connection: the
    // remaining actions and any later input wait, in order.
    let paused = false;
    const backlog: Buffer[] = [];
    const timers = new Set<NodeJS.Timeout>();
    const resume = (fn: () => void) => {
      paused = false;
      if (socket.destroyed || ended) return;
      fn();
      while (!paused && !ended && !socket.destroyed && backlog.length > 0) feed(backlog.shift()!);
    };
    const later = (ms: number, fn: () => void) => {
      paused = true;
      const t = setTimeout(() => {
        timers.delete(t);
        if (!socket.destroyed && !ended) idle.refresh();
        resume(fn);
      }, ms);
      timers.add(t);
    };
    /**
     * Carries out a call's answer (its injected delay first); false when the connection is done.
     * `count`: the call's number on this connection (for the request limit).
     */
    const answer = (
      bytes: Uint8Array,
      fault: CallFault | null | undefined,
      count: number,
      actions: AssociationAction[],
      next: number,
      staged: Staged[] | undefined,
    ): boolean => {
      const delay = fault?.delayMs ?? 0;
      if (delay > 0) {
        later(delay, () => {
          if (deliver(bytes, fault, count)) run(actions, next, staged);
        });
        return false;
      }
      return deliver(bytes, fault, count);
    };

    /** Sends the bind_ack as an injected fault wants it; false when the connection is done. */
    const faultedBind = (f: BindFault, ack: BindAckPdu, bytes: Uint8Array): boolean => {
      log.info({ peer, connectionId, fault: f.name }, 'bind answered with an injected fault');
      if (f.bindNak !== undefined) {
        send(encodePdu(makeBindNak(ack.callId, f.bindNak)));
        end();
        return false;
      }
      let out = bytes;
      if (f.rejectContexts) {
        contextsRejected = true;
        out = encodePdu({
          ...ack,
          results: ack.results.map(() => ({
            result: CONTEXT_RESULT.PROVIDER_REJECTION,
            reason: PROVIDER_REASON.PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED,
            transferSyntax: { uuid: NULL_SYNTAX.uuid, version: NULL_SYNTAX.version },
          })),
        });
      }
      send(out);
      if (f.closeAfterBind) {
        end();
        return false;
      }
      return true;
    };

    /** Writes a call's answer as an injected fault wants it; false when the connection is done. */
    const deliver = (bytes: Uint8Array, fault: CallFault | null | undefined, count: number): boolean => {
      if (fault?.closeMidResponse) {
        const half = bytes.subarray(0, Math.max(1, bytes.length >> 1));
        tap?.('s2c', connectionId, half);
        ended = true;
        socket.write(half, () => socket.destroy());
        return false;
      }
      send(bytes);
      if (count >= this.limits.maxRequestsPerConnection) {
        // Stop here: later calls already read from the same chunk are neither run nor counted.
        log.info({ peer, connectionId, requests: count }, 'request limit per connection reached: closing');
        end();
        return false;
      }
      return true;
    };

    /**
     * `staged[i]`: the call at actions[i] was already handled (in the commit group of the turn its
     * chunk arrived in) and only needs answering.
     */
    const run = (actions: AssociationAction[], from = 0, staged?: Staged[]): void => {
      for (let i = from; i < actions.length; i++) {
        if (ended) return;
        const a = actions[i]!;
        switch (a.type) {
          case 'send': {
            if (a.pdu.type === PTYPE.BIND_ACK) {
              this.stats.binds += 1;
              this.emit({ kind: 'bind', connectionId });
              const f = this.hooks.bindFault?.({ peer, connectionId }) ?? null;
              if (f) {
                const ack = a.pdu;
                if (f.delayMs !== undefined && f.delayMs > 0) {
                  later(f.delayMs, () => {
                    if (faultedBind(f, ack, a.bytes)) run(actions, i + 1);
                  });
                  return;
                }
                if (!faultedBind(f, ack, a.bytes)) return;
                break;
              }
            }
            send(a.bytes);
            break;
          }
          case 'call': {
            const pre = staged?.[i];
            if (pre) {
              const out = pre.finish();
              if (!answer(out.bytes, out.fault, pre.count, actions, i + 1, staged)) return;
              break;
            }
            requests += 1;
            if (contextsRejected) {
              if (!answer(assoc.fault(a.call, NCA_STATUS.UNK_IF), null, requests, actions, i + 1, staged)) {
                return;
              }
              break;
            }
            // Handled now, answered once this turn's commit group is committed (see `group`). The
            // chunk's later calls are handled now as well, so a client sending several requests at
            // once is served at the pace it sends (its input does not pile up here), except where the
            // calls that follow might not run at all, which is decided when the answers go out: after
            // an injected fault, at the request limit, and once the answers staged so far would take
            // the bytes waiting for the client past maxUnsentBytes (the answer that crosses the cap
            // drops the connection, and nothing after it may run).
            const list: Staged[] = [];
            let s = this.stageCall(assoc, a.call, peer, connectionId);
            list[i] = { finish: s.finish, count: requests };
            let unsent = socket.writableLength + s.size;
            for (let j = i + 1; j < actions.length; j++) {
              const b = actions[j]!;
              if (b.type !== 'call') continue;
              if (s.fault || requests >= this.limits.maxRequestsPerConnection) break;
              if (unsent > this.limits.maxUnsentBytes) break;
              requests += 1;
              s = this.stageCall(assoc, b.call, peer, connectionId);
              list[j] = { finish: s.finish, count: requests };
              unsent += s.size;
            }
            paused = true;
            this.afterCommit(() => {
              if (socket.destroyed || ended) {
                // Nothing to write to, but these calls were handled: observe and log them.
                paused = false;
                for (const x of list) x?.finish();
                return;
              }
              resume(() => run(actions, i, list));
            });
            return;
          }
          case 'close':
            if (a.error) {
              this.stats.closedByError += 1;
              this.emit({ kind: 'protocol-error', connectionId, code: a.error.code });
            }
            log.info({ peer, connectionId, reason: a.reason, code: a.error?.code }, 'closing connection');
            socket.end();
            socket.destroySoon?.();
            return;
          case 'note':
            log[a.level]({ peer, connectionId }, a.message);
            break;
        }
      }
    };

    const feed = (chunk: Buffer) => {
      let actions: AssociationAction[];
      try {
        actions = assoc.receive(chunk);
      } catch (e) {
        // The association only throws on a bug; keep serving everyone else.
        log.error({ err: e, peer, connectionId }, 'association failed');
        socket.destroy();
        return;
      }
      if (actions.length > 0) idle.refresh();
      run(actions);
    };

    socket.on('data', (chunk: Buffer) => {
      if (ended) return;
      if (tap) tap('c2s', connectionId, chunk);
      if (paused) backlog.push(chunk);
      else feed(chunk);
    });
    socket.on('error', (e) => log.debug({ err: e, peer, connectionId }, 'socket error'));
    socket.on('close', () => {
      clearTimeout(idle);
      clearTimeout(lifetime);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      this.sockets.delete(socket);
      this.stats.open = this.sockets.size;
      this.emit({ kind: 'connection-close', connectionId, peer });
    });
  }

  /** Queues `fn` for the end of this event-loop turn, after the turn's commit group is committed. */
  private afterCommit(fn: () => void): void {
    this.turn.push(fn);
    this.scheduleTurn();
  }

  private scheduleTurn(): void {
    if (!this.turnScheduled) {
      this.turnScheduled = true;
      setImmediate(this.flushTurn);
    }
  }

  /** Holds this turn's writes to `socket` until the turn ends (see `corked`). */
  private cork(socket: net.Socket): void {
    if (this.flushing || socket.writableCorked > 0) return;
    socket.cork();
    this.corked.push(socket);
    this.scheduleTurn();
  }

  /**
   * Runs one call through the service with this turn's commit group. Returns what produces its answer
   * once the group is committed: the answer PDU and the injected fault that shaped it (observed and
   * logged then, so observers never see a call whose change did not reach the store).
   */
  private stageCall(
    assoc: Association,
    call: RpcCall,
    peer: string,
    connectionId: number,
  ): { finish: () => Answer; fault: CallFault | null; size: number } {
    const service = this.opts.service;
    if (this.group === null) this.group = service.openGroup();
    const group = this.group;
    const started = this.observers.size > 0 ? performance.now() : 0;
    const index = group.size;
    let outcome: CallOutcome;
    try {
      outcome = service.handleCall(
        call.stub,
        call.syntax,
        { peer, connectionId },
        this.hooks.callFault,
        group,
      );
    } catch (e) {
      return {
        finish: () => this.callFailed(assoc, call, peer, connectionId, e),
        fault: null,
        size: FAULT_SIZE,
      };
    }
    const staged = group.size > index;
    const durationMs = this.observers.size > 0 ? performance.now() - started : 0;
    const finish = (): Answer => {
      const failure = staged ? group.failure(index) : null;
      if (failure !== null && failure !== undefined) {
        return this.callFailed(assoc, call, peer, connectionId, failure);
      }
      return this.callDone(assoc, call, peer, connectionId, outcome, durationMs);
    };
    // The answer's size (a single-fragment response, or a 32-byte fault), for the unsent-bytes cap.
    const size = outcome.kind === 'response' ? RESPONSE_HEADER + outcome.stub.length : FAULT_SIZE;
    return { finish, fault: outcome.fault ?? null, size };
  }

  /** The answer to a call the service handled (and whose change, if any, is committed). */
  private callDone(
    assoc: Association,
    call: RpcCall,
    peer: string,
    connectionId: number,
    outcome: CallOutcome,
    durationMs: number,
  ): Answer {
    const log = this.opts.logger;
    try {
      if (this.observers.size > 0) {
        this.emit({ kind: 'call', connectionId, outcome, durationMs, ndr: call.syntax });
      }
      const fault = outcome.fault ?? null;
      if (outcome.event) log.info(outcome.event, 'activation request');
      if (outcome.error) {
        log.warn(
          { peer, connectionId, code: outcome.error.code, err: outcome.error.message },
          'bad KMS request',
        );
      }
      if (outcome.kind === 'fault') {
        this.stats.faults += 1;
        return { bytes: assoc.fault(call, outcome.status), fault };
      }
      return { bytes: assoc.respond(call, outcome.stub), fault };
    } catch (e) {
      return this.callFailed(assoc, call, peer, connectionId, e);
    }
  }

  /** A call that failed for a reason other than bad input (the store, or a bug): an RPC fault. */
  private callFailed(
    assoc: Association,
    call: RpcCall,
    peer: string,
    connectionId: number,
    e: unknown,
  ): Answer {
    // A store failure or a bug: answer an RPC fault for this call and keep the host up.
    this.opts.logger.error({ err: e, peer, connectionId }, 'request failed');
    this.emit({ kind: 'call-error', connectionId, error: e as Error });
    this.stats.faults += 1;
    return { bytes: assoc.fault(call, 0x1c010001 /* nca_s_comm_failure-like: server error */), fault: null };
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** Stops accepting, lets in-flight writes drain, closes every connection. */
  async close(): Promise<void> {
    this.closing = true;
    // Answers waiting for this turn's commit go out first.
    this.gathered = true;
    this.flushTurn();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const s of this.sockets) s.end();
    const deadline = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, 1000);
    while (this.sockets.size > 0) await new Promise((r) => setTimeout(r, 5));
    clearTimeout(deadline);
  }
}
