/**
 * The edge's one-timer deadline queue against a plain model: every queued item fires once when the
 * clock reaches its time, in time order, never early; re-queueing and taking out act at once; one
 * scheduler timer is armed at most, and none when nothing is queued.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/host/clock.js';
import { Deadlines, type Queued } from '../../../src/server/deadlines.js';

const T0 = 1_000_000;

class Item implements Queued {
  armedFor = Number.POSITIVE_INFINITY;
  heapIndex = -1;
  readonly fired: number[] = [];
  constructor(
    readonly id: number,
    private readonly log: { id: number; at: number }[],
    private readonly onFire?: (item: Item, now: number) => void,
  ) {}
  deadlineReached(now: number): void {
    this.fired.push(now);
    this.log.push({ id: this.id, at: now });
    this.onFire?.(this, now);
  }
}

/** A manual clock at T0, a queue on it, and the log every item writes its firings to. */
function setup(): { clock: ManualClock; queue: Deadlines<Item>; log: { id: number; at: number }[] } {
  const clock = new ManualClock(T0);
  return { clock, queue: new Deadlines<Item>(clock), log: [] };
}

type Op =
  | { kind: 'set'; item: number; in: number }
  | { kind: 'clear'; item: number }
  | { kind: 'advance'; by: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), item: fc.nat(7), in: fc.integer({ min: 0, max: 50 }) }),
  fc.record({ kind: fc.constant('clear' as const), item: fc.nat(7) }),
  fc.record({ kind: fc.constant('advance' as const), by: fc.integer({ min: 0, max: 30 }) }),
);

describe('Deadlines', () => {
  it('fires like a sorted model: each once, in time order, at or after its time, never early', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const { clock, queue, log } = setup();
        const items = Array.from({ length: 8 }, (_, i) => new Item(i, log));
        // The model: item -> due time, for those queued.
        const model = new Map<number, number>();
        const expected: { id: number; at: number }[] = [];
        for (const o of ops) {
          if (o.kind === 'set') {
            const at = clock.now() + o.in;
            queue.set(items[o.item]!, at);
            model.set(o.item, at);
          } else if (o.kind === 'clear') {
            queue.set(items[o.item]!, Number.POSITIVE_INFINITY);
            model.delete(o.item);
          } else {
            const to = clock.now() + o.by;
            // Due ones fire at the earliest due time among them (one timer), in due order, ties in id-free
            // heap order: compare as multisets per firing instant, and the instants in order.
            for (;;) {
              const due = [...model.entries()].filter(([, at]) => at <= to);
              if (due.length === 0) break;
              const first = Math.min(...due.map(([, at]) => at));
              const batch = due.filter(([, at]) => at <= first);
              for (const [id] of batch) {
                expected.push({ id, at: first });
                model.delete(id);
              }
            }
            clock.advance(o.by);
          }
          expect(queue.size).toBe(model.size);
          expect(clock.pendingTimers).toBe(model.size > 0 ? 1 : 0);
          for (const it of items) expect(it.armedFor).toBe(model.get(it.id) ?? Number.POSITIVE_INFINITY);
        }
        const byInstant = (l: { id: number; at: number }[]) =>
          l.map((e) => `${e.at}:${e.id}`).sort((a, b) => a.localeCompare(b));
        expect(byInstant(log)).toEqual(byInstant(expected));
        // Instants never go backwards, and none fires before its time.
        for (let i = 1; i < log.length; i++) expect(log[i]!.at).toBeGreaterThanOrEqual(log[i - 1]!.at);
      }),
      { numRuns: 300 },
    );
  });

  it('fires everything due in one pass, and an item re-queued for now waits for the next timer', () => {
    const { clock, queue, log } = setup();
    let again = 0;
    const requeuer = new Item(1, log, (item, now) => {
      if (again++ < 2) queue.set(item, now);
    });
    const other = new Item(2, log);
    queue.set(requeuer, T0 + 10);
    queue.set(other, T0 + 10);
    clock.advance(10);
    // Each pass ran `requeuer` once; the manual clock fires timers armed by a firing timer when due, so
    // the two re-queues ran in passes of their own rather than looping inside one.
    expect(requeuer.fired).toEqual([T0 + 10, T0 + 10, T0 + 10]);
    expect(other.fired).toEqual([T0 + 10]);
    expect(queue.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it("an item taken out by an earlier one's step does not fire", () => {
    const { clock, queue, log } = setup();
    const victim = new Item(2, log);
    const closer = new Item(1, log, () => queue.set(victim, Number.POSITIVE_INFINITY));
    queue.set(closer, T0 + 5);
    queue.set(victim, T0 + 6);
    clock.advance(10);
    expect(closer.fired).toEqual([T0 + 5]);
    // victim was due at +6, after the pass at +5 took it out: it never fires.
    expect(victim.fired).toEqual([]);
    expect(queue.size).toBe(0);
  });

  it('moves its one timer to an earlier deadline and back to the next one when the earliest leaves', () => {
    const { clock, queue, log } = setup();
    const late = new Item(1, log);
    const early = new Item(2, log);
    queue.set(late, T0 + 100);
    queue.set(early, T0 + 10);
    expect(clock.pendingTimers).toBe(1);
    queue.set(early, Number.POSITIVE_INFINITY);
    expect(clock.pendingTimers).toBe(1);
    clock.advance(99);
    expect(late.fired).toEqual([]);
    clock.advance(1);
    expect(late.fired).toEqual([T0 + 100]);
    expect(early.fired).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });
});
