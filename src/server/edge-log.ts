/**
 * Log lines for per-connection events (refusals, evictions, idle closes, protocol errors), rate-limited
 * per kind: a flood of connections must not become a flood of log. The metrics count every event; the
 * log keeps a few lines a second per kind, the next line carrying how many were left out.
 */
import type { Logger } from 'pino';
import type { Clock } from '../host/clock.js';

/**
 * At most `perSecond` lines a second for one kind of event. `take` returns null to stay silent, else
 * how many were left out since the last line.
 */
export class LogRateLimit {
  private windowStart = Number.NEGATIVE_INFINITY;
  private inWindow = 0;
  private suppressed = 0;
  constructor(private readonly perSecond = 5) {}

  take(now: number): number | null {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.perSecond) {
      this.suppressed += 1;
      return null;
    }
    this.inWindow += 1;
    const n = this.suppressed;
    this.suppressed = 0;
    return n;
  }
}

/** Lines per second per kind of per-connection event, unless the EdgeLog is given another rate. */
const EDGE_LOG_LINES_PER_SECOND = 5;

export class EdgeLog {
  private readonly kinds = new Map<string, LogRateLimit>();
  /** `rates`: lines per second for some kinds (the rest get 5). */
  constructor(
    readonly logger: Logger,
    private readonly clock: Clock,
    private readonly rates: Readonly<Record<string, number>> = {},
  ) {}

  /**
   * Logs `msg` unless `kind` already had its lines this second; the next line logged carries
   * `suppressed` (how many were left out), added to a copy: `fields` is not changed (it may be an event
   * others keep).
   */
  line(kind: string, level: 'info' | 'warn' | 'error', fields: object, msg: string): void {
    let limit = this.kinds.get(kind);
    if (limit === undefined) {
      limit = new LogRateLimit(this.rates[kind] ?? EDGE_LOG_LINES_PER_SECOND);
      this.kinds.set(kind, limit);
    }
    const suppressed = limit.take(this.clock.now());
    if (suppressed === null) return;
    this.logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }
}
