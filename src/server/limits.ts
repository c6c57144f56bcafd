/**
 * The edge's bounds: what one connection may cost the host, and how many connections it holds. The
 * sans-io Connection (connection.ts) enforces the per-connection ones, the driver (tcp.ts) the cap;
 * docs/robustness.md states what each bounds and why its default.
 */

export interface ServerLimits {
  /** Close a connection with no complete PDU for this long (spec a.1: 30 s like vlmcsd). */
  idleTimeoutMs: number;
  /**
   * Concurrent connections. At the cap, the connection open longest without completing a call is
   * closed to admit the new one; only a cap full of connections that completed a call refuses.
   */
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
  /**
   * Client bytes held while a call waits. Reading stops as soon as one chunk waits, so only a socket
   * that keeps delivering after pause() reaches it; the connection is then dropped.
   */
  maxQueuedInput: number;
  /**
   * "activation request" log lines (info) per second, host-wide: a client sending requests as fast as
   * it can must not turn into as many log lines (~900 B each). One client address gets at most half of
   * them (edge-log.ts), so such a client cannot silence everyone else's. The next line logged after
   * lines were left out carries `suppressed: N`; every request is still in the history, the metrics and
   * the observations.
   */
  maxActivationLogLinesPerSecond: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  idleTimeoutMs: 30_000,
  maxConnections: 10_000,
  maxPduSize: 5840,
  maxCallSize: 64 * 1024,
  maxConnectionLifetimeMs: 10 * 60_000,
  maxUnsentBytes: 256 * 1024,
  maxRequestsPerConnection: 1_000_000,
  maxQueuedInput: 128 * 1024,
  maxActivationLogLinesPerSecond: 100,
};
