/**
 * The background driver of history retention (src/store/prune.ts decides, this schedules). A pass
 * runs at start and after every `everyRequests` history rows, against the host's clock (manual or
 * system), one batch per event-loop turn until the history is within its policy: a request never waits
 * behind more than one short DELETE. Driven by requests, not by wall time: the history only grows when
 * requests come, and a test on the manual clock sees pruning at the same points on every run.
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
  batch?: number;
}

export class HistoryPruner {
  private running = false;
  private stopped = false;
  private sinceLastPass = 0;
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
    if (++this.sinceLastPass >= (this.o.everyRequests ?? 500)) this.pass();
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

  private pass(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.sinceLastPass = 0;
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
      this.running = false;
    };
    setImmediate(batchOnce);
  }
}
