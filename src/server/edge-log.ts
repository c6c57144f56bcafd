/**
 * Log lines for per-connection events (refusals, evictions, idle closes, protocol errors, activations),
 * rate-limited per kind: a flood of connections must not become a flood of log. The metrics count every
 * event; the log keeps a few lines a second per kind, the next line carrying how many were left out.
 * Within a kind's second, one client address takes at most half of the lines (rounded up), so a client
 * flooding one kind cannot silence that kind for everyone else.
 */
import type { Logger } from 'pino';
import type { Clock } from '../host/clock.js';

/**
 * At most `perSecond` lines a second for one kind of event, and at most `perSource` of them for one
 * source (a client address). `take` returns null to stay silent, else how many lines of the kind were
 * left out since the last one (from any source).
 */
export class LogRateLimit {
  /** ceil(perSecond / 2): the rest of a second's lines stay free for other sources. */
  readonly perSource: number;
  private windowStart = Number.NEGATIVE_INFINITY;
  private inWindow = 0;
  private suppressed = 0;
  /**
   * Lines each source took in the current second. Only sources that logged have an entry, and it is
   * cleared with the window: at most `perSecond` entries, however many addresses a flood uses.
   */
  private readonly bySource = new Map<string, number>();

  constructor(private readonly perSecond = 5) {
    if (!Number.isSafeInteger(perSecond) || perSecond < 1)
      throw new RangeError(`log lines per second must be a whole number of at least 1, got ${perSecond}`);
    this.perSource = Math.ceil(perSecond / 2);
  }

  /** `source`: the client address the line is about; none for host-wide events (no share applies). */
  take(now: number, source?: string): number | null {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.inWindow = 0;
      this.bySource.clear();
    }
    if (this.inWindow >= this.perSecond) {
      this.suppressed += 1;
      return null;
    }
    if (source !== undefined) {
      const taken = this.bySource.get(source) ?? 0;
      if (taken >= this.perSource) {
        this.suppressed += 1;
        return null;
      }
      this.bySource.set(source, taken + 1);
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
   * Logs `msg` unless `kind` already had its lines this second, or `source` (the client address the
   * event is about) its share of them; the next line logged carries `suppressed` (how many were left
   * out), added to a copy: `fields` is not changed (it may be an event others keep).
   */
  line(kind: string, level: 'info' | 'warn' | 'error', fields: object, msg: string, source?: string): void {
    let limit = this.kinds.get(kind);
    if (limit === undefined) {
      limit = new LogRateLimit(this.rates[kind] ?? EDGE_LOG_LINES_PER_SECOND);
      this.kinds.set(kind, limit);
    }
    const suppressed = limit.take(this.clock.now(), source);
    if (suppressed === null) return;
    this.logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }
}
