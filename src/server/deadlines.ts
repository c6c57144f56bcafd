/**
 * The deadlines of every connection of a server under one scheduler timer: a binary min-heap by due
 * time. A timer per connection costs a Timeout, a closure and a cancel handle for each open connection
 * (docs/benchmarks.md, "what an open connection keeps"); here an open connection keeps two numbers,
 * and a closed one leaves the heap at once.
 */
import type { Scheduler, Timer } from '../host/clock.js';

/** What the queue holds: its own due time and heap slot live on it, so queueing allocates nothing. */
export interface Queued {
  /** The time it is queued for; Infinity when not queued. Written only by `Deadlines`. */
  armedFor: number;
  /** Its slot in the heap; -1 when not queued. Written only by `Deadlines`. */
  heapIndex: number;
  /** Its time came; it is already out of the queue and may queue itself again. */
  deadlineReached(now: number): void;
}

export class Deadlines<T extends Queued> {
  private readonly heap: T[] = [];
  private timer: Timer | null = null;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(private readonly scheduler: Scheduler) {}

  /** How many are queued. */
  get size(): number {
    return this.heap.length;
  }

  /** Queues `q` for `at` (in place of any earlier time), or takes it out for Infinity. */
  set(q: T, at: number): void {
    if (q.heapIndex >= 0) this.removeAt(q.heapIndex);
    q.armedFor = at;
    if (at !== Number.POSITIVE_INFINITY) {
      q.heapIndex = this.heap.length;
      this.heap.push(q);
      this.up(q.heapIndex);
    }
    this.arm();
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.scheduler.now();
    // Take out everything due before any of it runs: a step may queue itself again, even for `now`,
    // and that waits for the next timer rather than looping in this pass.
    const due: T[] = [];
    while (this.heap.length > 0 && this.heap[0]!.armedFor <= now) {
      const q = this.heap[0]!;
      this.removeAt(0);
      q.armedFor = Number.POSITIVE_INFINITY;
      due.push(q);
    }
    for (const q of due) q.deadlineReached(now);
    this.arm();
  };

  /** One timer, for the earliest deadline; none when nothing is queued. */
  private arm(): void {
    const first = this.heap.length > 0 ? this.heap[0]!.armedFor : Number.POSITIVE_INFINITY;
    if (first === this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = first;
    this.timer = first === Number.POSITIVE_INFINITY ? null : this.scheduler.at(first, this.fire);
  }

  private removeAt(i: number): void {
    const heap = this.heap;
    heap[i]!.heapIndex = -1;
    const last = heap.pop()!;
    if (i === heap.length) return;
    heap[i] = last;
    last.heapIndex = i;
    this.up(i);
    this.down(last.heapIndex);
  }

  private up(i: number): void {
    const heap = this.heap;
    const q = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (p.armedFor <= q.armedFor) break;
      heap[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    heap[i] = q;
    q.heapIndex = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const q = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && heap[r]!.armedFor < heap[l]!.armedFor ? r : l;
      const child = heap[c]!;
      if (child.armedFor >= q.armedFor) break;
      heap[i] = child;
      child.heapIndex = i;
      i = c;
    }
    heap[i] = q;
    q.heapIndex = i;
  }
}
