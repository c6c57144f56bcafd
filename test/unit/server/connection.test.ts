/**
 * The sans-io Connection in memory, the way h11 tests a ConnectionPair: no socket, no port, no timer.
 * A small driver model (`Pair`) carries the actions out as tcp.ts does: it honours pause (input then
 * waits "in the kernel", here an array), answers 'commit' at the end of the step, and counts what the
 * client has not read yet as unsent bytes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Association, type RpcCall } from '../../../src/rpc/association.js';
import { PTYPE } from '../../../src/rpc/constants.js';
import { decodePdu } from '../../../src/rpc/decode.js';
import {
  type Answer,
  type CallHandler,
  Connection,
  type ConnectionAction,
  type StagedCall,
} from '../../../src/server/connection.js';
import type { BindFault } from '../../../src/server/fault-seam.js';
import { DEFAULT_LIMITS, type ServerLimits } from '../../../src/server/limits.js';
import { bindBytes, requestBytes } from '../../helpers/raw-client.js';
import { concatBytes } from '../rpc/captures.js';

const T0 = 1_000_000;

interface FakeStaged extends StagedCall {
  call: RpcCall;
  finished: boolean;
}

/** Answers every call with its own first 16 stub bytes (so the answer depends on the input). */
class FakeHandler implements CallHandler {
  /** callIds in the order they were run. */
  readonly ran: number[] = [];
  readonly finished: number[] = [];
  bindFault: BindFault | null = null;
  callFault: ((call: RpcCall) => StagedCall['delivery']) | null = null;
  /** Set by the pair while a commit is outstanding: no call may run then. */
  waiting = false;
  violations: string[] = [];

  bind(): BindFault | null {
    return this.bindFault;
  }

  stage(_conn: Connection, call: RpcCall): StagedCall {
    if (this.waiting) this.violations.push(`call ${call.callId} ran while a commit was outstanding`);
    this.ran.push(call.callId);
    const s: FakeStaged = { call, delivery: this.callFault?.(call) ?? null, size: 24 + 16, finished: false };
    return s;
  }

  finish(conn: Connection, staged: StagedCall): Answer {
    const s = staged as FakeStaged;
    if (s.finished) this.violations.push(`call ${s.call.callId} finished twice`);
    s.finished = true;
    this.finished.push(s.call.callId);
    const stub = new Uint8Array(16);
    stub.set(s.call.stub.subarray(0, 16));
    return { bytes: conn.association.respond(s.call, stub), delivery: s.delivery };
  }
}

/** A Connection and a model of its driver. */
class Pair {
  readonly handler = new FakeHandler();
  readonly conn: Connection;
  now = T0;
  /** Bytes sent to the client; `read` of them the client has read. */
  sent: Uint8Array[] = [];
  sentBytes = 0;
  read = 0;
  /** Client bytes not yet delivered (reading paused). */
  readonly kernel: Uint8Array[] = [];
  closed: Extract<ConnectionAction, { type: 'close' }> | null = null;
  paused = false;
  commitPending = false;
  /** Largest queued input / assembling bytes / unsent seen after any step. */
  peakQueued = 0;
  peakAssembling = 0;
  peakUnsent = 0;

  constructor(
    limits: Partial<ServerLimits> = {},
    readonly clientReads = true,
  ) {
    this.conn = new Connection({
      id: 1,
      peer: '192.0.2.1:40000',
      now: this.now,
      limits: { ...DEFAULT_LIMITS, ...limits },
      newAssociation: () =>
        new Association({
          profile: { ndr64: true, btfn: true },
          secondaryAddress: '1688',
          maxPduSize: limits.maxPduSize ?? DEFAULT_LIMITS.maxPduSize,
          maxCallSize: limits.maxCallSize ?? DEFAULT_LIMITS.maxCallSize,
          newAssocGroupId: () => 0x1234,
        }),
      handler: this.handler,
    });
  }

  get unsent(): number {
    return this.sentBytes - this.read;
  }

  /** The client writes `chunk`: delivered now unless reading is paused. */
  write(chunk: Uint8Array): void {
    if (this.closed) return;
    if (this.paused) this.kernel.push(chunk);
    else this.apply(this.conn.receive(chunk, this.now, this.unsent));
  }

  /**
   * The end of the event-loop turn: the commit group is committed and the waiting calls answered
   * (calls they let run wait for the next turn's group, as in tcp.ts); then the client reads.
   */
  endTurn(): void {
    if (this.commitPending && !this.closed) {
      this.commitPending = false;
      this.handler.waiting = false;
      this.apply(this.conn.committed(this.now, this.unsent));
    }
    if (this.clientReads) this.read = this.sentBytes;
  }

  /** Moves time to `t`, firing the deadline if due (as the driver's timer would). */
  advanceTo(t: number): void {
    while (!this.closed && this.conn.deadline <= t) {
      this.now = Math.max(this.now, this.conn.deadline);
      this.apply(this.conn.timeout(this.now, this.unsent));
      while (this.commitPending && !this.closed) this.endTurn();
    }
    this.now = t;
  }

  private apply(actions: readonly ConnectionAction[]): void {
    for (const a of actions) {
      switch (a.type) {
        case 'send':
          this.sent.push(a.bytes.slice());
          this.sentBytes += a.bytes.length;
          break;
        case 'pause':
          this.paused = true;
          break;
        case 'resume':
          this.paused = false;
          break;
        case 'commit':
          this.commitPending = true;
          this.handler.waiting = true;
          break;
        case 'close':
          this.closed = a;
          break;
        case 'note':
          break;
      }
    }
    this.conn.settle();
    // A closed connection is dropped by the driver with whatever it holds: measured while open.
    if (this.closed) return;
    this.peakQueued = Math.max(this.peakQueued, this.conn.queuedInputBytes);
    this.peakAssembling = Math.max(this.peakAssembling, this.conn.assemblingBytes);
    this.peakUnsent = Math.max(this.peakUnsent, this.conn.unsentBytes);
    // Paused input is delivered once reading resumes.
    while (!this.paused && !this.closed && this.kernel.length > 0) {
      const next = this.kernel.shift()!;
      this.apply(this.conn.receive(next, this.now, this.unsent));
    }
  }

  /** PDU types and call ids the client received. */
  get answers(): { type: number; callId: number }[] {
    return splitPdus(concatBytes(this.sent)).map((b) => {
      const p = decodePdu(b);
      return { type: p.type, callId: p.callId };
    });
  }
}

function splitPdus(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at + 10 <= bytes.length; ) {
    const len = bytes[at + 8]! | (bytes[at + 9]! << 8);
    out.push(bytes.subarray(at, at + len));
    at += len;
  }
  return out;
}

const stubOf = (i: number) => Uint8Array.from({ length: 40 }, (_, k) => (i * 7 + k) & 0xff);
const bind = () => bindBytes(1, { ndr64: false, btfn: false });
const request = (callId: number) => requestBytes(callId, 0, stubOf(callId));
/** A bind and `n` requests (call ids 2..n+1), as one byte string. */
const conversation = (n: number) =>
  concatBytes([bind(), ...Array.from({ length: n }, (_, i) => request(i + 2))]);

describe('Connection: a conversation in memory', () => {
  it('answers a bind and pipelined requests, in order, each after its commit', () => {
    const p = new Pair();
    p.write(conversation(3));
    // bind_ack out at once; the three calls ran (one commit group) but wait for the commit.
    expect(p.answers.map((a) => a.type)).toEqual([PTYPE.BIND_ACK]);
    expect(p.handler.ran).toEqual([2, 3, 4]);
    expect(p.commitPending).toBe(true);
    p.endTurn();
    expect(p.answers).toEqual([
      { type: PTYPE.BIND_ACK, callId: 1 },
      { type: PTYPE.RESPONSE, callId: 2 },
      { type: PTYPE.RESPONSE, callId: 3 },
      { type: PTYPE.RESPONSE, callId: 4 },
    ]);
    expect(p.conn.answered).toBe(3);
  });

  it('settle() lets go of the step: an idle connection keeps no answer bytes', () => {
    const p = new Pair();
    const conn = p.conn;
    const step = conn.receive(bind(), p.now, 0);
    expect(step.some((a) => a.type === 'send')).toBe(true);
    conn.settle();
    expect(step).toHaveLength(0);
  });

  it('stops reading while a call waits for its commit, and reads on after it', () => {
    const p = new Pair();
    p.write(concatBytes([bind(), request(2)]));
    expect(p.commitPending).toBe(true);
    p.write(request(3));
    expect(p.paused).toBe(true);
    expect(p.conn.queuedInputBytes).toBe(request(3).length);
    expect(p.handler.ran).toEqual([2]);
    p.endTurn();
    // Call 2 answered; the queued call 3 ran and waits for the next group, so reading stays stopped.
    expect(p.handler.ran).toEqual([2, 3]);
    expect(p.paused).toBe(true);
    p.endTurn();
    expect(p.paused).toBe(false);
    expect(p.conn.queuedInputBytes).toBe(0);
    expect(p.answers.map((a) => a.callId)).toEqual([1, 2, 3]);
  });

  it('drops a driver that keeps delivering past maxQueuedInput while reading is stopped', () => {
    const p = new Pair({ maxQueuedInput: 1000 });
    p.write(concatBytes([bind(), request(2)]));
    // Feed directly, ignoring the pause the way a broken driver would.
    const actions = [...p.conn.receive(new Uint8Array(600), p.now, 0)];
    expect(actions).toEqual([{ type: 'pause' }]);
    expect(p.conn.receive(new Uint8Array(600), p.now, 0)).toEqual([
      { type: 'close', reason: 'input-overflow', mode: 'destroy' },
    ]);
  });
});

describe('Connection: deadlines', () => {
  it('idle timeout: re-armed by each complete PDU, not by bytes of an incomplete one', () => {
    const p = new Pair({ idleTimeoutMs: 500 });
    expect(p.conn.deadline).toBe(T0 + 500);
    p.advanceTo(T0 + 300);
    p.write(bind());
    expect(p.conn.deadline).toBe(T0 + 800);
    p.advanceTo(T0 + 700);
    p.write(request(2).subarray(0, 10)); // half a header: no PDU
    expect(p.conn.deadline).toBe(T0 + 800);
    p.advanceTo(T0 + 799);
    expect(p.closed).toBeNull();
    p.advanceTo(T0 + 800);
    expect(p.closed).toEqual({ type: 'close', reason: 'idle', mode: 'destroy' });
  });

  it('lifetime: the deadline never passes it, whatever keeps the idle timer happy', () => {
    const p = new Pair({ idleTimeoutMs: 700, maxConnectionLifetimeMs: 1500 });
    p.write(bind());
    for (let t = T0 + 300; t < T0 + 1500; t += 300) {
      p.advanceTo(t);
      p.write(request((t - T0) / 300 + 1));
      p.endTurn();
      expect(p.conn.deadline).toBeLessThanOrEqual(T0 + 1500);
    }
    expect(p.closed).toBeNull();
    p.advanceTo(T0 + 1500);
    expect(p.closed?.reason).toBe('lifetime');
  });

  it('an injected delay holds the answer until its deadline; the idle timeout does not run meanwhile', () => {
    const p = new Pair({ idleTimeoutMs: 100 });
    p.handler.callFault = () => ({ name: 'slow', delayMs: 250 });
    p.write(concatBytes([bind(), request(2)]));
    p.endTurn();
    expect(p.answers.map((a) => a.callId)).toEqual([1]);
    expect(p.conn.deadline).toBe(T0 + 250);
    p.write(request(3)); // waits behind the delayed answer
    expect(p.paused).toBe(true);
    p.advanceTo(T0 + 249);
    expect(p.answers.map((a) => a.callId)).toEqual([1]);
    p.advanceTo(T0 + 250);
    expect(p.closed).toBeNull();
    // Answer 2 at 250; then call 3 ran, was delayed in turn, answered at 500.
    expect(p.answers.map((a) => a.callId)).toEqual([1, 2]);
    p.advanceTo(T0 + 500);
    expect(p.answers.map((a) => a.callId)).toEqual([1, 2, 3]);
    expect(p.handler.ran).toEqual([2, 3]);
  });

  it('an injected bind delay holds the bind_ack, and the request behind it', () => {
    const p = new Pair();
    p.handler.bindFault = { name: 'delay-bind', delayMs: 1000 };
    p.write(concatBytes([bind(), request(2)]));
    p.endTurn();
    expect(p.sent).toEqual([]);
    expect(p.handler.ran).toEqual([]);
    p.advanceTo(T0 + 1000);
    expect(p.answers.map((a) => a.callId)).toEqual([1, 2]);
  });
});

describe('Connection: limits', () => {
  it('maxRequestsPerConnection 3: the third answer ends the connection; later calls are not run', () => {
    const p = new Pair({ maxRequestsPerConnection: 3 });
    p.write(conversation(5));
    p.endTurn();
    expect(p.handler.ran).toEqual([2, 3, 4]);
    expect(p.answers.map((a) => a.callId)).toEqual([1, 2, 3, 4]);
    expect(p.closed).toEqual({ type: 'close', reason: 'request-limit', mode: 'end' });
  });

  it('maxUnsentBytes 1 KiB, client never reads: dropped at the answer that crosses the cap, nothing after runs', () => {
    const cap = 1024;
    const p = new Pair({ maxUnsentBytes: cap }, false);
    p.write(conversation(100));
    for (let turn = 0; turn < 200 && !p.closed; turn++) p.endTurn();
    expect(p.closed).toEqual({ type: 'close', reason: 'unread', mode: 'destroy' });
    // Over the cap by at most one answer (40 bytes here), and every call run was answered.
    expect(p.conn.unsentBytes).toBeGreaterThan(cap);
    expect(p.conn.unsentBytes).toBeLessThanOrEqual(cap + 40);
    expect(p.handler.finished).toEqual(p.handler.ran);
    expect(p.handler.ran.length).toBe(p.answers.length - 1);
  });

  it('maxUnsentBytes: a client that reads between turns is never dropped, even with a chunk of 100 calls', () => {
    const p = new Pair({ maxUnsentBytes: 1024 }, true);
    p.write(conversation(100));
    for (let turn = 0; turn < 200 && p.commitPending; turn++) p.endTurn();
    expect(p.closed).toBeNull();
    expect(p.answers).toHaveLength(101);
  });

  it('a bind fault that closes after the bind_ack: nothing more is run', () => {
    const p = new Pair();
    p.handler.bindFault = { name: 'close-after-bind', closeAfterBind: true };
    p.write(conversation(2));
    expect(p.answers.map((a) => a.type)).toEqual([PTYPE.BIND_ACK]);
    expect(p.closed).toEqual({ type: 'close', reason: 'fault', mode: 'end', detail: 'close-after-bind' });
    expect(p.handler.ran).toEqual([]);
  });

  it('close-mid-response: half the answer PDU, then dropped once it is written', () => {
    const p = new Pair();
    p.handler.callFault = () => ({ name: 'cut', closeMidResponse: true });
    p.write(conversation(2));
    p.endTurn();
    const full = 24 + 16;
    expect(p.sent.map((b) => b.length).slice(1)).toEqual([full >> 1]);
    expect(p.closed).toEqual({ type: 'close', reason: 'fault', mode: 'flush-destroy', detail: 'cut' });
  });

  it('calls staged before the client went away are still finished (observed) at the commit', () => {
    const p = new Pair();
    p.write(conversation(3));
    p.conn.abort('peer');
    p.endTurn();
    expect(p.handler.finished).toEqual([2, 3, 4]);
    expect(p.answers).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------------
// Properties

/** Cut `bytes` at the given fractions into chunks (every chunk non-empty). */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))]
    .filter((c) => c > 0 && c < bytes.length)
    .sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.slice(prev, c));
    prev = c;
  }
  return out;
}

/** Feeds chunks, ending the turn after the chunks `turnAfter` says; returns the pair when idle. */
function run(pair: Pair, chunks: Uint8Array[], turnAfter: boolean[]): Pair {
  chunks.forEach((c, i) => {
    pair.write(c);
    if (turnAfter[i % turnAfter.length]) pair.endTurn();
  });
  for (let i = 0; i < 1000 && (pair.commitPending || pair.kernel.length > 0); i++) pair.endTurn();
  return pair;
}

describe('Connection: properties', () => {
  const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 });
  const turnsArb = fc.array(fc.boolean(), { minLength: 1, maxLength: 8 });

  it('arbitrary chunking and turn boundaries give the same answers as one write', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), cutsArb, turnsArb, (n, cuts, turns) => {
        const bytes = conversation(n);
        const whole = run(new Pair(), [bytes], [true]);
        const pieces = run(new Pair(), chunked(bytes, cuts), turns);
        expect(concatBytes(pieces.sent)).toEqual(concatBytes(whole.sent));
        expect(pieces.handler.ran).toEqual(whole.handler.ran);
        expect(pieces.handler.violations).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  it('a connection waiting for a call never runs another, and runs calls in the order sent', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        cutsArb,
        turnsArb,
        fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }),
        (n, cuts, turns, delayEvery) => {
          const p = new Pair();
          if (delayEvery !== undefined) {
            p.handler.callFault = (c) => (c.callId % delayEvery === 0 ? { name: 'slow', delayMs: 10 } : null);
          }
          const chunks = chunked(conversation(n), cuts);
          chunks.forEach((c, i) => {
            p.write(c);
            if (turns[i % turns.length]) p.endTurn();
            p.advanceTo(p.now + 5);
          });
          for (let i = 0; i < 1000 && !p.closed && p.answers.length < n + 1; i++) {
            p.endTurn();
            p.advanceTo(p.now + 10);
          }
          const ids = Array.from({ length: n }, (_, i) => i + 2);
          expect(p.handler.violations).toEqual([]);
          expect(p.handler.ran).toEqual(ids);
          expect(p.handler.finished).toEqual(ids);
          expect(p.answers.map((a) => a.callId)).toEqual([1, ...ids]);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('memory stays under its bound for any client behaviour (valid, garbage, never reading)', () => {
    const limits = { maxPduSize: 1024, maxCallSize: 4096, maxUnsentBytes: 2048, maxQueuedInput: 8192 };
    const itemArb = fc.oneof(
      fc.integer({ min: 1, max: 30 }).map((n) => conversation(n)),
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc.integer({ min: 2, max: 9 }).map((k) => request(k)),
    );
    fc.assert(
      fc.property(
        fc.array(itemArb, { maxLength: 12 }),
        cutsArb,
        turnsArb,
        fc.boolean(),
        (items, cuts, turns, reads) => {
          const p = new Pair(limits, reads);
          const bytes = concatBytes(items);
          const chunks = chunked(bytes, cuts);
          const biggest = Math.max(0, ...chunks.map((c) => c.length));
          run(p, chunks, turns);
          // Queued input: at most the one chunk read before reading stopped.
          expect(p.peakQueued).toBeLessThanOrEqual(biggest);
          expect(p.peakAssembling).toBeLessThanOrEqual(limits.maxPduSize + limits.maxCallSize);
          // Unsent: the cap plus at most one answer (the 5840-byte bind_ack bound is far above).
          expect(p.peakUnsent).toBeLessThanOrEqual(limits.maxUnsentBytes + 128);
          expect(p.handler.violations).toEqual([]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
