/**
 * The background driver of history retention (src/store/prune.ts decides, this schedules). A pass
 * runs at start, after every `everyRequests` history rows, and at the first row written an hour (host
 * clock) or more after the last pass, so the age bound holds to within the hour however slowly rows
 * come. A pass runs against the host's clock (manual or system), one batch per event-loop turn until
 * the history is within its policy: a request never waits behind more than one short DELETE. Driven
 * by rows, not by timers: the history only grows when requests come, and a test on the manual clock
 * sees pruning at the same points on every run.
 */
import type { Logger } from 'pino';
import type { Clock } from '../host/clock.js';
import { PRUNE_BATCH, type RetentionPolicy, type SqlitePruner } from '../store/prune.js';

export interface HistoryPrunerOptions {
  pruner: SqlitePruner;
  policy: RetentionPolicy;
  clock: Clock;
  logger: Logger;
  /** Rows between passes (default 500): the row bound may be passed by at most this many. */
  everyRequests?: number;
  /** Host-clock time after which the next row starts a pass anyway (default an hour). */
  everyMs?: number;
  batch?: number;
}

const HOUR_MS = 3_600_000;

export class HistoryPruner {
  private running = false;
  private stopped = false;
  private sinceLastPass = 0;
  private lastPassAt = Number.NEGATIVE_INFINITY;
  private waiting: (() => void)[] = [];
  /** Rows pruned since start. */
  pruned = 0;

  constructor(private readonly o: HistoryPrunerOptions) {}

  /** A pass now (in the background). */
  start(): this {
    this.pass();
    return this;
  }

  /** One more history row was written. */
  noteRow(): void {
    if (
      ++this.sinceLastPass >= (this.o.everyRequests ?? 500) ||
      this.o.clock.now() - this.lastPassAt >= (this.o.everyMs ?? HOUR_MS)
    )
      this.pass();
  }

  /** Resolves once no pass is running (at once if none is). */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** One batch now; returns the rows it deleted. */
  step(): number {
    const n = this.o.pruner.step(this.o.policy, this.o.clock.now(), this.o.batch ?? PRUNE_BATCH);
    this.pruned += n;
    return n;
  }

  /** Every batch until the history is within the policy, synchronously (tests, tools). */
  drain(): number {
    let total = 0;
    for (let n = this.step(); n > 0; n = this.step()) total += n;
    return total;
  }

  stop(): void {
    this.stopped = true;
  }

  private finish(): void {
    this.running = false;
    for (const w of this.waiting.splice(0)) w();
  }

  private pass(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.sinceLastPass = 0;
    this.lastPassAt = this.o.clock.now();
    let total = 0;
    const batchOnce = () => {
      let n = 0;
      if (!this.stopped) {
        try {
          n = this.step();
        } catch (e) {
          this.o.logger.error({ err: e }, 'history pruning failed; retrying at the next pass');
        }
      }
      total += n;
      if (n > 0) {
        // Yield to the sockets between batches.
        setImmediate(batchOnce);
        return;
      }
      if (total > 0) this.o.logger.debug({ pruned: total }, 'history pruned to its retention');
      this.finish();
    };
    setImmediate(batchOnce);
  }
}
