import type { ActivationEvent } from '../host/events.js';
import type { FaultFired } from './faults.js';

/** A connection opened, closed, or was refused (by the connection limit or an injected fault). */
export interface ConnectionEvent {
  type: 'connection';
  state: 'open' | 'close' | 'refused';
  /** Host-clock ms. */
  time: number;
  /** null for a refused connection. */
  connectionId: number | null;
  peer: string;
  reason?: 'limit' | 'fault';
}

/** `host.reset()` emptied the pools and the history. */
export interface ResetEvent {
  type: 'reset';
  time: number;
}

/**
 * Everything a lab host reports, in order. An activation carries the decision, count, HRESULT,
 * protocol, connection id, peer, and `fault` (the injected fault that shaped it, or null); a fault
 * event marks every rule that fired, at any level.
 */
export type LabEvent = ActivationEvent | FaultFired | ConnectionEvent | ResetEvent;

export interface LabEventMap {
  activation: ActivationEvent;
  fault: FaultFired;
  connection: ConnectionEvent;
  reset: ResetEvent;
  /** Every event. */
  event: LabEvent;
}

type Listener<T> = (e: T) => void;

/**
 * The event stream of one lab host: an emitter (`on('activation', fn)`) and an async iterable
 * (`for await (const e of host.events)`). Every event since the host started is buffered, so an
 * iterator started late still sees them all; iteration ends when the host closes.
 */
export class LabEvents implements AsyncIterable<LabEvent> {
  private readonly buffer: LabEvent[] = [];
  private readonly listeners = new Map<keyof LabEventMap, Set<Listener<never>>>();
  private readonly waiters = new Set<() => void>();
  private closed = false;

  /** @internal Appends an event and notifies listeners and iterators. */
  push(e: LabEvent): void {
    if (this.closed) return;
    this.buffer.push(e);
    for (const key of [e.type, 'event'] as const) {
      const set = this.listeners.get(key);
      if (!set) continue;
      for (const fn of [...set]) {
        try {
          (fn as Listener<LabEvent>)(e);
        } catch {
          // A throwing listener must not break the host's request path.
        }
      }
    }
    this.wake();
  }

  /** @internal Ends every iteration (the host closed). */
  end(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  get ended(): boolean {
    return this.closed;
  }

  on<K extends keyof LabEventMap>(type: K, fn: Listener<LabEventMap[K]>): this {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(fn as Listener<never>);
    return this;
  }

  off<K extends keyof LabEventMap>(type: K, fn: Listener<LabEventMap[K]>): this {
    this.listeners.get(type)?.delete(fn as Listener<never>);
    return this;
  }

  once<K extends keyof LabEventMap>(type: K, fn: Listener<LabEventMap[K]>): this {
    const wrapper: Listener<LabEventMap[K]> = (e) => {
      this.off(type, wrapper);
      fn(e);
    };
    return this.on(type, wrapper);
  }

  /** A copy of every event so far, optionally of one type. */
  all(): LabEvent[];
  all<K extends keyof LabEventMap>(type: K): LabEventMap[K][];
  all(type?: keyof LabEventMap): LabEvent[] {
    return type === undefined || type === 'event'
      ? [...this.buffer]
      : this.buffer.filter((e) => e.type === type);
  }

  /**
   * The first event of `type` (from the start of the buffer, or only after `since` events) that
   * satisfies `pred`; rejects if the host closes first.
   */
  async first<K extends Exclude<keyof LabEventMap, 'event'>>(
    type: K,
    pred: (e: LabEventMap[K]) => boolean = () => true,
    since = 0,
  ): Promise<LabEventMap[K]> {
    for (let i = since; ; ) {
      while (i < this.buffer.length) {
        const e = this.buffer[i++]!;
        if (e.type === type && pred(e as LabEventMap[K])) return e as LabEventMap[K];
      }
      if (this.closed) throw new Error(`the host closed before a matching ${type} event`);
      await new Promise<void>((r) => this.waiters.add(r));
    }
  }

  /** Number of events so far (a `since` mark for `first`). */
  get size(): number {
    return this.buffer.length;
  }

  [Symbol.asyncIterator](): AsyncIterator<LabEvent> {
    let i = 0;
    let done = false;
    return {
      next: async (): Promise<IteratorResult<LabEvent>> => {
        for (;;) {
          if (done) return { done: true, value: undefined };
          if (i < this.buffer.length) return { done: false, value: this.buffer[i++]! };
          if (this.closed) {
            done = true;
            return { done: true, value: undefined };
          }
          await new Promise<void>((r) => this.waiters.add(r));
        }
      },
      return: async (): Promise<IteratorResult<LabEvent>> => {
        done = true;
        return { done: true, value: undefined };
      },
    };
  }
}
