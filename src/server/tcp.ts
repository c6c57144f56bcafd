/**
 * The node:net edge: a thin driver around the sans-io `Connection` (src/server/connection.ts). It
 * carries out the connection's actions on the socket (write, pause/resume, end/destroy), keeps the
 * deadline each connection reports in one queue with one timer for all (`Deadlines`, through the
 * injected Scheduler), and admits connections: at the cap, the connection open longest without
 * completing a call makes room (see `admit`). Calls and the group commit live in src/server/calls.ts, the event-loop turn that
 * commits them and corks the turn's writes in src/server/turn.ts; the limits in limits.ts.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { type Scheduler, SystemClock } from '../host/clock.js';
import type { Random } from '../host/random.js';
import type { KmsService } from '../host/service.js';
import { Association, AssociationGroups, type AssociationOptions } from '../rpc/association.js';
import { NegotiationCache } from '../rpc/negotiate.js';
import { CallRunner } from './calls.js';
import { type CloseReason, Connection, type ConnectionAction } from './connection.js';
import { Deadlines, type Queued } from './deadlines.js';
import { EdgeLog } from './edge-log.js';
import type { FaultSeam } from './fault-seam.js';
import { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
import type { ServerObservation, ServerStats } from './observations.js';
import { Turn } from './turn.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
export type { ServerObservation, ServerStats } from './observations.js';

/** Hooks the lab harness uses: fault injection and the raw tap. */
export interface ServerHooks {
  /** The fault seam (src/server/fault-seam.ts): none, and the server answers unshaped. */
  faults?: FaultSeam;
  /**
   * Raw tap (record/replay): client bytes as they arrive (chunks, not framed), server bytes as written
   * (whole PDUs; a shorter piece when a fault closes the connection mid-PDU).
   */
  onPdu?: (dir: 'c2s' | 's2c', connectionId: number, bytes: Uint8Array) => void;
}

export interface ServerOptions {
  listen: ListenAddress[];
  service: KmsService;
  logger: Logger;
  random: Random;
  profile?: { ndr64: boolean; btfn: boolean };
  limits?: Partial<ServerLimits>;
  hooks?: ServerHooks;
  /**
   * The clock of the edge's deadlines (idle, lifetime, injected delays) and of its log-rate windows.
   * Default: the system clock. Apart from the host's clock on purpose: a lab host's manual clock jumps
   * by days, which must not close every connection; limit tests pass a ManualClock here.
   */
  scheduler?: Scheduler;
  /**
   * The port string put in bind_ack's secondary address (spec a.4). Default: the listening port. A lab
   * host on an ephemeral port sets a fixed one so its transcripts are byte-identical across runs.
   */
  secondaryAddress?: string;
}

const CLOSE_LOG: Record<CloseReason, readonly ['info' | 'warn' | 'error', string] | null> = {
  protocol: ['info', 'closing connection'],
  idle: ['info', 'idle timeout: closing connection'],
  lifetime: ['warn', 'connection lifetime exceeded: closing'],
  unread: ['warn', 'client does not read: dropping'],
  'request-limit': ['info', 'request limit per connection reached: closing'],
  'input-overflow': ['warn', 'client input past maxQueuedInput while reading was stopped: dropping'],
  bug: ['error', 'association failed: dropping the connection'],
  evicted: ['info', 'connection cap reached: closed the connection open longest without a call'],
  fault: null, // the fault's own note says it
  peer: null,
  shutdown: null,
};
const EMPTY = new Uint8Array(0);

/** One socket and its Connection: actions become socket calls; its deadline waits in `Deadlines`. */
class SocketDriver implements Queued {
  /** The deadline it is queued for in `Deadlines` (Infinity: not queued), and its place in the heap. */
  armedFor = Number.POSITIVE_INFINITY;
  heapIndex = -1;
  /** Whether it is still an eviction candidate (has answered no call yet). */
  callless = true;

  constructor(
    readonly server: KmsServer,
    readonly socket: net.Socket,
    readonly conn: Connection,
  ) {}

  data(chunk: Buffer): void {
    this.server.hooks.onPdu?.('c2s', this.conn.id, chunk);
    this.apply(this.conn.receive(chunk, this.server.scheduler.now(), this.socket.writableLength));
  }

  /** Its queued deadline came (Deadlines has already taken it out of the queue). */
  deadlineReached(now: number): void {
    this.apply(this.conn.timeout(now, this.socket.writableLength));
  }

  committed(): void {
    this.apply(this.conn.committed(this.server.scheduler.now(), this.socket.writableLength));
  }

  apply(actions: readonly ConnectionAction[]): void {
    const { socket, server, conn } = this;
    for (const a of actions) {
      switch (a.type) {
        case 'send':
          server.hooks.onPdu?.('s2c', conn.id, a.bytes);
          server.turn.cork(socket);
          socket.write(a.bytes);
          break;
        case 'pause':
          socket.pause();
          break;
        case 'resume':
          socket.resume();
          break;
        case 'commit':
          server.turn.awaitCommit(this);
          break;
        case 'note':
          server.edgeLog.line(
            'note',
            a.level,
            { peer: conn.peer, connectionId: conn.id },
            a.message,
            conn.address,
          );
          break;
        case 'close':
          server.closing(this, a);
          if (a.mode === 'destroy') socket.destroy();
          else if (a.mode === 'end') {
            socket.end();
            socket.destroySoon?.();
          } else socket.write(EMPTY, () => socket.destroy());
          break;
      }
    }
    conn.settle();
    if (this.callless && conn.answered > 0) server.called(this);
    // Lazily: a later deadline (the idle timeout re-armed by a PDU) keeps the queued one, which is queued
    // again when it comes early; no queue work per request.
    const d = conn.deadline;
    if (d < this.armedFor) server.deadlines.set(this, d);
  }

  /** The socket closed (whoever closed it). */
  closed(): void {
    this.server.deadlines.set(this, Number.POSITIVE_INFINITY);
    this.conn.abort('peer');
    this.server.gone(this);
  }
}

/** The driver of an accepted socket, found by the shared listeners below (no closures per connection). */
const DRIVER = Symbol('kmslab.driver');
type DrivenSocket = net.Socket & { [DRIVER]: SocketDriver };

function onSocketData(this: DrivenSocket, chunk: Buffer): void {
  this[DRIVER].data(chunk);
}

function onSocketClose(this: DrivenSocket): void {
  this[DRIVER].closed();
}

function onSocketError(this: DrivenSocket, e: Error): void {
  const d = this[DRIVER];
  d.server.logger.debug({ err: e, peer: d.conn.peer, connectionId: d.conn.id }, 'socket error');
}

export class KmsServer {
  readonly limits: ServerLimits;
  readonly stats: ServerStats = {
    open: 0,
    accepted: 0,
    rejected: 0,
    evicted: 0,
    binds: 0,
    faults: 0,
    closedByError: 0,
  };
  readonly scheduler: Scheduler;
  readonly edgeLog: EdgeLog;
  readonly logger: Logger;
  /** Every connection's deadline, under one timer. */
  readonly deadlines: Deadlines<SocketDriver>;
  hooks: ServerHooks;
  private readonly servers: net.Server[] = [];
  private readonly drivers = new Set<SocketDriver>();
  /** Open connections that have answered no call, oldest first: who makes room at the cap. */
  private readonly callless = new Set<SocketDriver>();
  private nextConnectionId = 1;
  private shuttingDown = false;
  private readonly observers = new Set<(o: ServerObservation) => void>();
  private readonly calls: CallRunner;
  /** The association groups this host issued, across its connections (spec a.8). */
  private readonly assocGroups = new AssociationGroups();
  /** The context lists this host has negotiated, shared by its connections (rpc/negotiate.ts). */
  private readonly negotiations = new NegotiationCache();
  /** The event-loop turn: its commit group and its corked writes (see turn.ts). */
  readonly turn: Turn;
  /** The RPC host profile of every association (NDR64 and BTFN unless the options say otherwise). */
  private readonly profile: { ndr64: boolean; btfn: boolean };
  /** Association makers by the secondary address their bind_ack states (see associationFactory). */
  private readonly factories = new Map<string, () => Association>();
  /** A fresh non-zero association group id (spec a.8), one function for every association. */
  private readonly newAssocGroupId = (): number => (this.opts.random.uint32() | 1) >>> 0;

  constructor(private readonly opts: ServerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.profile = opts.profile ?? { ndr64: true, btfn: true };
    this.hooks = opts.hooks ?? {};
    this.logger = opts.logger;
    this.scheduler = opts.scheduler ?? new SystemClock();
    this.deadlines = new Deadlines(this.scheduler);
    this.edgeLog = new EdgeLog(opts.logger, this.scheduler, {
      activation: this.limits.maxActivationLogLinesPerSecond,
    });
    const server = this;
    this.calls = new CallRunner({
      service: opts.service,
      logger: opts.logger,
      edgeLog: this.edgeLog,
      get hooks() {
        return server.hooks;
      },
      stats: this.stats,
      get observed() {
        return server.observed;
      },
      emit: (o) => this.emit(o),
    });
    this.turn = new Turn(this.calls);
  }

  observe(fn: (o: ServerObservation) => void): () => void {
    this.observers.add(fn);
    return () => this.observers.delete(fn);
  }

  /** Whether anyone observes: observations are built only then (no object per event otherwise). */
  get observed(): boolean {
    return this.observers.size > 0;
  }

  private emit(o: ServerObservation): void {
    for (const fn of this.observers) fn(o);
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
      // EMFILE under a flood would repeat this for every refused accept: rate-limited.
      server.on('error', (e) => this.edgeLog.line('listener', 'error', { err: e }, 'listener error'));
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
    const address = socket.remoteAddress ?? '';
    const peer = `${address}:${socket.remotePort}`;
    if (this.shuttingDown || !this.admit()) {
      this.refuse(socket, peer, address, 'limit');
      return;
    }
    if (this.hooks.faults !== undefined && !this.hooks.faults.accept(peer)) {
      this.refuse(socket, peer, address, 'fault');
      return;
    }
    const id = this.nextConnectionId++;
    const secondaryAddress = this.opts.secondaryAddress ?? listenPort ?? String(socket.localPort ?? 1688);
    const newAssociation = this.associationFactory(secondaryAddress);
    const now = this.scheduler.now();
    const conn = new Connection({
      id,
      peer,
      address,
      now,
      limits: this.limits,
      newAssociation,
      handler: this.calls,
    });
    const d = new SocketDriver(this, socket, conn);
    this.drivers.add(d);
    this.callless.add(d);
    this.stats.accepted += 1;
    this.stats.open = this.drivers.size;
    if (this.observed) this.emit({ kind: 'connection-open', connectionId: id, peer });
    (socket as DrivenSocket)[DRIVER] = d;
    socket.on('data', onSocketData);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    d.apply([]);
  }

  /**
   * The association maker for connections whose bind_ack states `secondaryAddress` (one per listening
   * port, made once: no closure or options object per connection).
   */
  private associationFactory(secondaryAddress: string): () => Association {
    let make = this.factories.get(secondaryAddress);
    if (make === undefined) {
      // One options object for all of them: an association keeps its options for its lifetime.
      const opts: AssociationOptions = {
        profile: this.profile,
        secondaryAddress,
        maxPduSize: this.limits.maxPduSize,
        maxCallSize: this.limits.maxCallSize,
        newAssocGroupId: this.newAssocGroupId,
        groups: this.assocGroups,
        negotiations: this.negotiations,
      };
      make = () => new Association(opts);
      this.factories.set(secondaryAddress, make);
    }
    return make;
  }

  /**
   * Admission at the cap: the connection open longest without answering a call is closed to make
   * room, so a client holding (or re-opening) many idle connections cannot keep anyone out. A
   * connection that completed a call is never evicted; only a cap full of those refuses. No grace
   * period for young connections on purpose: a newcomer is evicted only after maxConnections newer
   * ones arrived (10,000 at the default: far more than any flood opens in a real client's round
   * trips), while a grace period would let a flood that fills the cap within it keep everyone out.
   */
  private admit(): boolean {
    if (this.drivers.size < this.limits.maxConnections) return true;
    const victim = this.callless.values().next();
    if (victim.done) return false;
    const d = victim.value;
    this.stats.evicted += 1;
    d.conn.abort('evicted');
    this.closing(d, { type: 'close', reason: 'evicted', mode: 'destroy' });
    // Out of the count at once (its 'close' comes later): the new connection takes its place.
    this.drivers.delete(d);
    this.callless.delete(d);
    d.socket.destroy();
    return true;
  }

  private refuse(socket: net.Socket, peer: string, address: string, reason: 'limit' | 'fault'): void {
    this.stats.rejected += 1;
    const fields = { peer, open: this.drivers.size };
    if (reason === 'limit')
      this.edgeLog.line('refused', 'warn', fields, 'connection refused: connection limit reached', address);
    else
      this.edgeLog.line('refused-fault', 'info', fields, 'connection refused by an injected fault', address);
    if (this.observed) this.emit({ kind: 'connection-rejected', peer, reason });
    socket.destroy();
  }

  /** A connection is being closed by the host: its log line (rate-limited per reason) and counts. */
  closing(d: SocketDriver, a: Extract<ConnectionAction, { type: 'close' }>): void {
    const c = d.conn;
    if (a.reason === 'protocol' && a.code !== undefined) {
      this.stats.closedByError += 1;
      if (this.observed) this.emit({ kind: 'protocol-error', connectionId: c.id, code: a.code });
    }
    const line = CLOSE_LOG[a.reason];
    if (line === null) return;
    const fields: Record<string, unknown> = { peer: c.peer, connectionId: c.id };
    if (a.detail !== undefined) fields.reason = a.detail;
    if (a.code !== undefined) fields.code = a.code;
    if (a.reason === 'unread') fields.unsent = c.unsentBytes;
    if (a.reason === 'request-limit') fields.requests = c.answered;
    this.edgeLog.line(a.reason, line[0], fields, line[1], c.address);
  }

  /** The connection answered its first call: no longer an eviction candidate. */
  called(d: SocketDriver): void {
    d.callless = false;
    this.callless.delete(d);
  }

  gone(d: SocketDriver): void {
    this.drivers.delete(d);
    this.callless.delete(d);
    this.stats.open = this.drivers.size;
    const c = d.conn;
    if (!this.observed) return;
    this.emit({
      kind: 'connection-close',
      connectionId: c.id,
      peer: c.peer,
      reason: c.closeReason ?? 'peer',
    });
  }

  get openConnections(): number {
    return this.drivers.size;
  }

  /** Stops accepting, lets in-flight writes drain, closes every connection. */
  async close(): Promise<void> {
    this.shuttingDown = true;
    // Answers waiting for this turn's commit go out first.
    this.turn.flushNow();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const d of this.drivers) {
      d.conn.abort('shutdown');
      d.socket.end();
    }
    const deadline = setTimeout(() => {
      for (const d of this.drivers) d.socket.destroy();
    }, 1000);
    while (this.drivers.size > 0) await new Promise((r) => setTimeout(r, 5));
    clearTimeout(deadline);
  }
}
