import net from 'node:net';
import type { Logger } from 'pino';
import type { FaultHook, KmsService } from '../host/service.js';
import type { Random } from '../host/random.js';
import { Association, type AssociationAction, type RpcCall } from '../rpc/association.js';
import { PTYPE } from '../rpc/constants.js';
import { isProtocolError } from '../wire/errors.js';

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
  maxRequestsPerConnection: 10_000,
};

/** Hooks the lab harness uses to inject faults at the connection level. */
export interface ServerHooks {
  /** Return false to refuse the connection (e.g. "host down from day 3 to day 9"). */
  acceptConnection?: (peer: string) => boolean;
  /** KMS-level faults for one call. */
  callFault?: FaultHook;
  /** Raw PDU tap (record/replay). */
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

  constructor(private readonly opts: ServerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.hooks = opts.hooks ?? {};
  }

  /** Listens on every address; resolves with the bound addresses (port 0 → the ephemeral port). */
  async start(): Promise<ListenAddress[]> {
    const bound: ListenAddress[] = [];
    for (const a of this.opts.listen) {
      const server = net.createServer({ noDelay: true }, (s) => this.accept(s));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: a.host, port: a.port, exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (e) => this.opts.logger.error({ err: e }, 'listener error'));
      const addr = server.address() as net.AddressInfo;
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

  private accept(socket: net.Socket): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const log = this.opts.logger;
    if (this.closing || this.sockets.size >= this.limits.maxConnections) {
      this.stats.rejected += 1;
      log.warn({ peer, open: this.sockets.size }, 'connection refused: connection limit reached');
      socket.destroy();
      return;
    }
    if (this.hooks.acceptConnection && !this.hooks.acceptConnection(peer)) {
      this.stats.rejected += 1;
      log.info({ peer }, 'connection refused by an injected fault');
      socket.destroy();
      return;
    }
    const connectionId = this.nextConnectionId++;
    this.sockets.add(socket);
    this.stats.accepted += 1;
    this.stats.open = this.sockets.size;
    const assoc = new Association({
      profile: this.opts.profile ?? { ndr64: true, btfn: true },
      secondaryAddress: String(socket.localPort ?? 1688),
      maxPduSize: this.limits.maxPduSize,
      maxCallSize: this.limits.maxCallSize,
      newAssocGroupId: () => (this.opts.random.uint32() | 1) >>> 0,
    });
    let requests = 0;
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
      socket.write(bytes);
      if (socket.writableLength > this.limits.maxUnsentBytes) {
        log.warn({ peer, connectionId, unsent: socket.writableLength }, 'client does not read: dropping');
        socket.destroy();
      }
    };

    const run = (actions: AssociationAction[]) => {
      for (const a of actions) {
        switch (a.type) {
          case 'send':
            if (a.pdu.type === PTYPE.BIND_ACK) this.stats.binds += 1;
            send(a.bytes);
            break;
          case 'call': {
            requests += 1;
            this.call(assoc, a.call, peer, connectionId, send);
            if (requests >= this.limits.maxRequestsPerConnection) {
              log.info({ peer, connectionId, requests }, 'request limit per connection reached: closing');
              socket.end();
            }
            break;
          }
          case 'close':
            if (a.error) this.stats.closedByError += 1;
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

    socket.on('data', (chunk: Buffer) => {
      if (tap) tap('c2s', connectionId, chunk);
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
    });
    socket.on('error', (e) => log.debug({ err: e, peer, connectionId }, 'socket error'));
    socket.on('close', () => {
      clearTimeout(idle);
      clearTimeout(lifetime);
      this.sockets.delete(socket);
      this.stats.open = this.sockets.size;
    });
  }

  private call(assoc: Association, call: RpcCall, peer: string, connectionId: number, send: (b: Uint8Array) => void): void {
    const log = this.opts.logger;
    let out: Uint8Array;
    try {
      const outcome = this.opts.service.handleCall(call.stub, call.syntax, { peer, connectionId }, this.hooks.callFault);
      if (outcome.event) log.info(outcome.event, 'activation request');
      if (outcome.error) {
        log.warn({ peer, connectionId, code: outcome.error.code, err: outcome.error.message }, 'bad KMS request');
      }
      if (outcome.kind === 'fault') {
        this.stats.faults += 1;
        out = assoc.fault(call, outcome.status);
      } else {
        out = assoc.respond(call, outcome.stub);
      }
    } catch (e) {
      if (isProtocolError(e)) throw e;
      // A store failure or a bug: answer an RPC fault for this call and keep the host up.
      log.error({ err: e, peer, connectionId }, 'request failed');
      this.stats.faults += 1;
      out = assoc.fault(call, 0x1c010001 /* nca_s_comm_failure-like: server error */);
    }
    send(out);
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** Stops accepting, lets in-flight writes drain, closes every connection. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const s of this.sockets) s.end();
    const deadline = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, 1000);
    while (this.sockets.size > 0) await new Promise((r) => setTimeout(r, 5));
    clearTimeout(deadline);
  }
}
