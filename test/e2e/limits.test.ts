/**
 * The host's resource limits (src/server/tcp.ts ServerLimits), each with its default and a test over
 * real loopback sockets. Time is virtual: the edge's deadlines (idle timeout, lifetime) run on a
 * ManualClock passed as `edgeClock`, so each test moves the clock and asserts the exact millisecond a
 * connection is closed; nothing sleeps on the wall clock. A test waits only for events (bytes taken by
 * the host, answers, closes): the raw client's waits carry a generous guard (3 s), the others end on
 * events only, and vitest's test timeout bounds a host that never answers.
 *
 * The unsent-bytes cap (a client that never reads) is tested in memory with the Connection
 * (test/unit/server/connection.test.ts): over a real socket it would depend on the kernel's buffers.
 *
 * The 10,000-connection case runs the host in a child process (each process then holds 10,000
 * descriptors, under this machine's `ulimit -n`), scaled down with a message when the limit is lower.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/host/clock.js';
import { SeededRandom } from '../../src/host/random.js';
import { HResult } from '../../src/kms/hresult.js';
import { HOST_MAX_FRAG, PFC, PTYPE } from '../../src/rpc/constants.js';
import type { BindAckPdu } from '../../src/rpc/pdu.js';
import { type HostRuntime, startHostRuntime } from '../../src/server/runtime.js';
import { DEFAULT_LIMITS, type ServerLimits, type ServerObservation } from '../../src/server/tcp.js';
import {
  activateOnce,
  activationStub,
  bindBytes,
  RawKmsClient,
  RawSocket,
  readAnswer,
  requestBody,
  requestBytes,
} from '../helpers/raw-client.js';

const T0 = Date.UTC(2026, 0, 1);

interface LogLine {
  level: number;
  msg: string;
  connectionId?: number;
  suppressed?: number;
}

interface Host {
  rt: HostRuntime;
  /** The edge's clock: only the test moves it. */
  clock: ManualClock;
  logs: LogLine[];
  /** Observations and log lines in the order they happened. */
  timeline: ({ t: 'obs'; o: ServerObservation } | { t: 'log'; l: LogLine })[];
  /** Client bytes the host has read, per connection (the server's raw tap). */
  read: Map<number, number>;
  /** Re-checks pending `waitFor`s: called on every observation, log line and read. */
  changed: Set<() => void>;
  addr: { host: string; port: number };
}

const runtimes: HostRuntime[] = [];
const sockets: RawSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(runtimes.splice(0).map((r) => r.close()));
});

async function host(limits: Partial<ServerLimits>): Promise<Host> {
  const logs: LogLine[] = [];
  const timeline: Host['timeline'] = [];
  const read = new Map<number, number>();
  const changed = new Set<() => void>();
  const poke = () => {
    for (const f of changed) f();
  };
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        const l = JSON.parse(line) as LogLine;
        logs.push(l);
        timeline.push({ t: 'log', l });
        poke();
      },
    },
  );
  const clock = new ManualClock(T0);
  const rt = await startHostRuntime({
    listen: [{ host: '127.0.0.1', port: 0 }],
    store: 'memory',
    clock: 'manual',
    edgeClock: clock,
    seed: 'limits',
    logger,
    limits,
    hooks: {
      onPdu(dir, connectionId, bytes) {
        if (dir !== 'c2s') return;
        read.set(connectionId, (read.get(connectionId) ?? 0) + bytes.length);
        poke();
      },
    },
  });
  runtimes.push(rt);
  rt.server.observe((o) => {
    timeline.push({ t: 'obs', o });
    poke();
  });
  return { rt, clock, logs, timeline, read, changed, addr: rt.addresses[0]! };
}

/**
 * Resolves once `cond()` holds, re-checked on every host event. No timer of its own: vitest's test
 * timeout bounds a wait that never ends, so a slow machine cannot fail it early.
 */
function waitFor(h: Host, cond: () => boolean): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (!cond()) return;
      h.changed.delete(check);
      resolve();
    };
    h.changed.add(check);
  });
}

/** Writes `bytes` and waits until the host has read them (its raw tap saw them). */
async function send(h: Host, s: RawSocket, id: number, bytes: Uint8Array): Promise<void> {
  const want = (h.read.get(id) ?? 0) + bytes.length;
  s.write(bytes);
  await waitFor(h, () => (h.read.get(id) ?? 0) >= want);
}

async function open(h: Host): Promise<RawSocket> {
  const s = await RawSocket.connect(h.addr);
  sockets.push(s);
  return s;
}

/** Resolves with the connection id of the next connection the host accepts. */
function nextConnectionId(h: Host): Promise<number> {
  return new Promise((resolve) => {
    const stop = h.rt.server.observe((o) => {
      if (o.kind === 'connection-open') {
        stop();
        resolve(o.connectionId);
      }
    });
  });
}

/** Opens a connection and waits for the host to accept it (its Connection starts at the clock's now). */
async function accepted(h: Host): Promise<{ s: RawSocket; id: number }> {
  const id = nextConnectionId(h);
  const s = await open(h);
  return { s, id: await id };
}

/** A valid request stub padded with zeros to `size` bytes (the NDR sizes name the message only). */
function paddedStub(size: number, seed: string) {
  const r = new SeededRandom(seed);
  const body = requestBody(r, {}, T0);
  const { stub, context } = activationStub(body, 'ndr32', r);
  const out = new Uint8Array(size);
  out.set(stub);
  return { stub: out, context, body };
}

const bind32 = () => bindBytes(2, { ndr64: false, btfn: false });
const logFor = (h: Host, msg: string, id: number) =>
  h.logs.find((l) => l.msg.startsWith(msg) && l.connectionId === id);
/** Why the host closed connection `id`, once its socket closed (undefined while open). */
const closeReason = (h: Host, id: number) => {
  for (const e of h.timeline) {
    if (e.t === 'obs' && e.o.kind === 'connection-close' && e.o.connectionId === id) return e.o.reason;
  }
  return undefined;
};

describe('limits: defaults', () => {
  it('every limit has a safe default, and a host without limits uses them', async () => {
    expect(DEFAULT_LIMITS).toEqual({
      idleTimeoutMs: 30_000,
      maxConnections: 10_000,
      maxPduSize: 5840,
      maxCallSize: 64 * 1024,
      maxConnectionLifetimeMs: 10 * 60_000,
      maxUnsentBytes: 256 * 1024,
      maxRequestsPerConnection: 1_000_000,
      maxQueuedInput: 128 * 1024,
      maxActivationLogLinesPerSecond: 100,
    });
    for (const v of Object.values(DEFAULT_LIMITS)) expect(Number.isSafeInteger(v) && v > 0).toBe(true);
    // Consistent with each other: a whole KMS PDU fits, the call cap holds a PDU, the lifetime outlasts
    // the idle timeout, and many answers fit in the unsent allowance.
    expect(DEFAULT_LIMITS.maxPduSize).toBeGreaterThanOrEqual(HOST_MAX_FRAG);
    expect(DEFAULT_LIMITS.maxPduSize).toBeLessThanOrEqual(0xffff);
    expect(DEFAULT_LIMITS.maxCallSize).toBeGreaterThanOrEqual(DEFAULT_LIMITS.maxPduSize);
    expect(DEFAULT_LIMITS.maxConnectionLifetimeMs).toBeGreaterThan(DEFAULT_LIMITS.idleTimeoutMs);
    expect(DEFAULT_LIMITS.maxUnsentBytes).toBeGreaterThan(100 * 400);
    const a = await host({});
    expect(a.rt.server.limits).toEqual(DEFAULT_LIMITS);
    const b = await host({ idleTimeoutMs: 1234 });
    expect(b.rt.server.limits).toEqual({ ...DEFAULT_LIMITS, idleTimeoutMs: 1234 });
  });
});

describe('limits: PDU and call size', () => {
  it('maxPduSize 1024: advertised in bind_ack, a 1024-byte PDU is served, a 1025 header closes at once', async () => {
    const h = await host({ maxPduSize: 1024, idleTimeoutMs: 10_000 });
    const s = await open(h);
    s.write(bind32());
    const ack = (await s.nextPdu()) as BindAckPdu & { bytes: Uint8Array };
    expect(ack.type).toBe(PTYPE.BIND_ACK);
    expect(ack.maxRecvFrag).toBe(1024);
    const { stub, context, body } = paddedStub(1024 - 24, 'pdu-1024');
    const req = requestBytes(3, 0, stub);
    expect(req.length).toBe(1024);
    s.write(req);
    const answer = readAnswer(await s.nextPdu(), 'ndr32', context, body);
    expect(answer.hresult).toBe(HResult.S_OK);
    expect(s.isClosed).toBe(false);

    // The header alone announces 1025 bytes: refused before any body byte is sent.
    const id = nextConnectionId(h);
    const big = await open(h);
    const header = requestBytes(4, 0, new Uint8Array(1025 - 24)).subarray(0, 16);
    big.write(header);
    // Closed with the edge clock still: by the header, not by the (10 s) idle timeout.
    await big.waitClose();
    const cid = await id;
    expect(h.timeline).toContainEqual({
      t: 'obs',
      o: { kind: 'protocol-error', connectionId: cid, code: 'PDU_TOO_LARGE' },
    });
    await expectServed(h);
  });

  it('maxCallSize 600: fragments adding up to 600 are served, to 750 close the connection', async () => {
    const h = await host({ maxCallSize: 600 });
    const { stub, context, body } = paddedStub(600, 'call-600');
    const ok = await open(h);
    ok.write(bind32());
    await ok.nextPdu();
    ok.write(requestBytes(3, 0, stub.subarray(0, 300), { flags: PFC.FIRST_FRAG }));
    ok.write(requestBytes(3, 0, stub.subarray(300), { flags: PFC.LAST_FRAG }));
    expect(readAnswer(await ok.nextPdu(), 'ndr32', context, body).hresult).toBe(HResult.S_OK);

    const id = nextConnectionId(h);
    const over = await open(h);
    over.write(bind32());
    await over.nextPdu();
    const big = new Uint8Array(750);
    over.write(requestBytes(3, 0, big.subarray(0, 250), { flags: PFC.FIRST_FRAG }));
    over.write(requestBytes(3, 0, big.subarray(250, 500), { flags: 0 }));
    over.write(requestBytes(3, 0, big.subarray(500), { flags: PFC.LAST_FRAG }));
    await over.waitClose(2000);
    expect(over.received.map((p) => p.type)).toEqual([PTYPE.BIND_ACK]);
    expect(h.timeline).toContainEqual({
      t: 'obs',
      o: { kind: 'protocol-error', connectionId: await id, code: 'PDU_TOO_LARGE' },
    });
  });
});

describe('limits: time (virtual: the edge clock moves only when the test moves it)', () => {
  it('idle timeout 500 ms is re-armed by every PDU: a request every 300 ms keeps the connection, 500 ms of silence closes it', async () => {
    const h = await host({ idleTimeoutMs: 500 });
    const id = nextConnectionId(h);
    const c = await RawKmsClient.connect(h.addr, { nowMs: T0, seed: 'idle', ndr64: false, btfn: false });
    sockets.push(c.conn);
    const cid = await id;
    for (let i = 0; i < 6; i++) {
      h.clock.advance(300);
      expect(logFor(h, 'idle timeout', cid), `closed before request ${i + 1}`).toBeUndefined();
      expect((await c.activate()).hresult).toBe(HResult.S_OK);
    }
    // 6 × 300 ms: well past the 500 ms timeout, still open. Now silence: closed at exactly 500 ms.
    h.clock.advance(499);
    expect(logFor(h, 'idle timeout', cid)).toBeUndefined();
    h.clock.advance(1);
    expect(logFor(h, 'idle timeout', cid)).toBeDefined();
    await c.conn.waitClose();
    await waitFor(h, () => closeReason(h, cid) !== undefined);
    expect(closeReason(h, cid)).toBe('idle');
  });

  it('idle timeout 300 ms: bytes that never complete a PDU do not re-arm it', async () => {
    const h = await host({ idleTimeoutMs: 300 });
    const { s, id } = await accepted(h);
    const bind = bind32();
    // Five bytes of a bind header, 50 ms apart: each read by the host, none completing a PDU.
    for (let i = 0; i < 5; i++) {
      await send(h, s, id, bind.subarray(i, i + 1));
      h.clock.advance(50);
    }
    h.clock.advance(49); // 299 ms since accept
    expect(logFor(h, 'idle timeout', id)).toBeUndefined();
    h.clock.advance(1);
    expect(logFor(h, 'idle timeout', id)).toBeDefined();
    await s.waitClose();
    expect(s.received).toEqual([]);
  });

  it('lifetime 500 ms: a client dripping one byte every 50 ms is closed at 500 ms (idle timeout 10 s)', async () => {
    const h = await host({ maxConnectionLifetimeMs: 500, idleTimeoutMs: 10_000 });
    const { s, id } = await accepted(h);
    const bytes = Buffer.concat([bind32(), requestBytes(3, 0, paddedStub(300, 'drip').stub)]);
    for (let i = 0; i < 10; i++) {
      await send(h, s, id, bytes.subarray(i, i + 1));
      h.clock.advance(i < 9 ? 50 : 49); // 499 ms after the tenth byte
    }
    expect(logFor(h, 'connection lifetime exceeded', id)).toBeUndefined();
    h.clock.advance(1);
    expect(logFor(h, 'connection lifetime exceeded', id)).toBeDefined();
    await s.waitClose();
    await waitFor(h, () => closeReason(h, id) !== undefined);
    expect(closeReason(h, id)).toBe('lifetime');
  });

  it('lifetime 1500 ms also ends a client that keeps the idle timer (700 ms) happy with a PDU every 300 ms', async () => {
    const h = await host({ maxConnectionLifetimeMs: 1500, idleTimeoutMs: 700 });
    const { s, id } = await accepted(h);
    // co_cancel PDUs (16 bytes, no answer): each a complete PDU, so each re-arms the idle timer.
    const cancel = Uint8Array.of(5, 0, 18, 3, 0x10, 0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0);
    for (let i = 0; i < 5; i++) {
      await send(h, s, id, cancel);
      h.clock.advance(i < 4 ? 300 : 299); // the fifth at 1200 ms; 1499 ms after it
    }
    expect(logFor(h, 'connection lifetime exceeded', id)).toBeUndefined();
    h.clock.advance(1);
    expect(logFor(h, 'connection lifetime exceeded', id)).toBeDefined();
    await s.waitClose();
    expect(logFor(h, 'idle timeout', id)).toBeUndefined();
    expect(s.received).toEqual([]);
  });

  it('a connection the clock has not reached the deadline of stays open however long the test runs', async () => {
    // The edge's deadlines come from its clock alone: with the clock still, nothing closes.
    const h = await host({ idleTimeoutMs: 1, maxConnectionLifetimeMs: 2 });
    const { s, id } = await accepted(h);
    const c = await RawKmsClient.connect(h.addr, { nowMs: T0, seed: 'still', ndr64: false, btfn: false });
    sockets.push(c.conn);
    expect((await c.activate()).hresult).toBe(HResult.S_OK);
    expect(s.isClosed).toBe(false);
    expect(h.rt.server.openConnections).toBe(2);
    h.clock.advance(1);
    expect(logFor(h, 'idle timeout', id)).toBeDefined();
    await Promise.all([s.waitClose(), c.conn.waitClose()]);
  });
});

describe('limits: requests', () => {
  it('maxRequestsPerConnection 3: three answers, then the host closes; a new connection gets three more', async () => {
    const h = await host({ maxRequestsPerConnection: 3 });
    for (const round of [1, 2]) {
      const id = nextConnectionId(h);
      const c = await RawKmsClient.connect(h.addr, {
        nowMs: T0,
        seed: `req-${round}`,
        ndr64: false,
        btfn: false,
      });
      sockets.push(c.conn);
      for (let i = 0; i < 3; i++) expect((await c.activate()).hresult).toBe(HResult.S_OK);
      await c.conn.waitClose();
      expect(c.conn.received.map((p) => p.type)).toEqual([
        PTYPE.BIND_ACK,
        PTYPE.RESPONSE,
        PTYPE.RESPONSE,
        PTYPE.RESPONSE,
      ]);
      expect(logFor(h, 'request limit per connection reached', await id)).toBeDefined();
    }
    expect(h.rt.store.historyCount()).toBe(6);
  });

  it("maxActivationLogLinesPerSecond 4: one client's 5 requests in a second of edge time log its share, 2 lines; a second client's request that second is still logged and carries the 3 left out; all 7 are in the history", async () => {
    const h = await host({ maxActivationLogLinesPerSecond: 4 });
    const a = await RawKmsClient.connect(h.addr, { nowMs: T0, seed: 'log-rate', ndr64: false, btfn: false });
    sockets.push(a.conn);
    const lines = () => h.logs.filter((l) => l.msg === 'activation request');
    const peers = () => lines().map((l) => (l as LogLine & { peer: string }).peer.split(':')[0]);
    for (let i = 0; i < 5; i++) expect((await a.activate()).hresult).toBe(HResult.S_OK);
    expect(lines().map((l) => l.suppressed)).toEqual([undefined, undefined]);
    // Another client (another loopback address) in the same second: the flood left room for it.
    const b = await RawKmsClient.connect(h.addr, {
      nowMs: T0,
      seed: 'log-rate-b',
      ndr64: false,
      btfn: false,
      localAddress: '127.0.0.2',
    });
    sockets.push(b.conn);
    expect((await b.activate()).hresult).toBe(HResult.S_OK);
    await waitFor(h, () => lines().length === 3);
    expect(peers()).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.2']);
    expect(lines()[2]!.suppressed).toBe(3);
    h.clock.advance(1000);
    expect((await a.activate()).hresult).toBe(HResult.S_OK);
    await waitFor(h, () => lines().length === 4);
    expect(lines()[3]!.suppressed).toBeUndefined();
    expect(h.rt.store.historyCount()).toBe(7);
    // The count is on the log line only: the stored record and the observed event do not carry it.
    expect(h.rt.store.history().some((r) => 'suppressed' in r)).toBe(false);
  });
});

let servedCount = 0;
async function expectServed(h: Host): Promise<void> {
  servedCount += 1;
  const a = await activateOnce(h.addr, {}, { nowMs: T0, seed: `served-${servedCount}` });
  expect(a.hresult).toBe(HResult.S_OK);
}

// ---------------------------------------------------------------------------------------------------
// 10,000 idle connections, in a child process host

/** The file descriptor limit this process and its children run under. */
function fdLimit(): number {
  const out = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim();
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out) || 1024;
}

interface ChildStats {
  port?: number;
  open: number;
  rejected: number;
  evicted: number;
  mem?: NodeJS.MemoryUsage;
}

/** The host in a child process with --expose-gc, driven over IPC. */
class ChildHost {
  private readonly child: ChildProcess;
  private readonly inbox: ChildStats[] = [];
  private wake: (() => void) | null = null;
  readonly exited: Promise<number | null>;

  constructor(limits: Partial<ServerLimits>) {
    const runtime = new URL('../../src/server/runtime.ts', import.meta.url).href;
    // Messages: 'mem' (stats after GC), { open: N } (stats once exactly N connections are open).
    const code = `
      const { startHostRuntime } = await import(${JSON.stringify(runtime)});
      const rt = await startHostRuntime({
        listen: [{ host: '127.0.0.1', port: 0 }], store: 'memory', clock: 'manual', seed: 'limits-10k',
        limits: JSON.parse(process.env.KMSLAB_TEST_LIMITS),
      });
      let rejected = 0;
      let waits = [];
      const stats = (mem) => {
        if (mem) { globalThis.gc(); globalThis.gc(); }
        const s = rt.server.stats;
        return { open: rt.server.openConnections, rejected, evicted: s.evicted, ...(mem ? { mem: process.memoryUsage() } : {}) };
      };
      const check = () => {
        const ready = waits.filter((n) => n === rt.server.openConnections);
        waits = waits.filter((n) => n !== rt.server.openConnections);
        for (const _ of ready) process.send(stats(false));
      };
      rt.server.observe((o) => {
        if (o.kind === 'connection-rejected') rejected += 1;
        if (o.kind === 'connection-open' || o.kind === 'connection-close') check();
      });
      process.on('message', async (m) => {
        if (m === 'close') { await rt.close(); process.disconnect(); return; }
        if (m === 'mem') { process.send(stats(true)); return; }
        waits.push(m.open);
        check();
      });
      process.send({ port: rt.addresses[0].port, ...stats(true) });
    `;
    this.child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', code],
      {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        env: { ...process.env, KMSLAB_TEST_LIMITS: JSON.stringify(limits) },
      },
    );
    this.child.on('message', (m) => {
      this.inbox.push(m as ChildStats);
      this.wake?.();
    });
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  /**
   * The child's next message; rejects if the child exits first. No timer: vitest's test timeout bounds
   * a child that hangs, so a slow machine cannot fail it early.
   */
  async next(what: string): Promise<ChildStats> {
    for (;;) {
      const m = this.inbox.shift();
      if (m) return m;
      await new Promise<void>((resolve, reject) => {
        const gone = (code: number | null) =>
          reject(new Error(`the child host exited (${code}) before: ${what}`));
        this.child.once('exit', gone);
        this.wake = () => {
          this.child.off('exit', gone);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  mem(): Promise<ChildStats> {
    this.child.send('mem');
    return this.next('mem');
  }

  /** Stats once exactly `n` connections are open. */
  whenOpen(n: number): Promise<ChildStats> {
    this.child.send({ open: n });
    return this.next(`${n} connections open`);
  }

  async close(): Promise<void> {
    if (this.child.connected) this.child.send('close');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

describe('limits: concurrent connections', () => {
  it('10,000 idle connections fill the cap; a real client is still served (the oldest idle one makes room); memory is bounded and released', async () => {
    const limit = fdLimit();
    let n = 10_000;
    if (limit < n + 500) {
      n = Math.max(100, Math.floor(limit - 500));
      console.warn(
        `limits.test.ts: ulimit -n is ${limit}; each process needs 10,000 + ~500 descriptors, so this run holds ${n} connections instead of 10,000`,
      );
    }
    const child = new ChildHost({ maxConnections: n, idleTimeoutMs: 120_000 });
    const clients: net.Socket[] = [];
    try {
      const hello = await child.next('start');
      const port = hello.port!;
      const connect = () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host: '127.0.0.1', port });
          s.once('error', reject);
          s.once('connect', () => {
            s.off('error', reject);
            s.on('error', () => {});
            resolve(s);
          });
        });
      // Warm up (accept path compiled, pools allocated), then measure from an idle host.
      const warm = await Promise.all(Array.from({ length: 200 }, connect));
      await child.whenOpen(200);
      for (const s of warm) s.destroy();
      await child.whenOpen(0);
      const before = (await child.mem()).mem!;
      // Open in batches, each accepted before the next (the listen backlog is 511).
      const batch = 500;
      for (let i = 0; i < n; i += batch) {
        clients.push(...(await Promise.all(Array.from({ length: Math.min(batch, n - i) }, connect))));
        await child.whenOpen(clients.length);
      }
      const held = await child.mem();
      expect(held.open).toBe(n);
      expect(held.rejected).toBe(0);
      expect(held.evicted).toBe(0);
      // The cap is full of connections that never sent a byte: a real client is served, and the
      // connection open longest makes room for it (evicted, nobody refused).
      const oldestClosed = new Promise<void>((r) => clients[0]!.once('close', () => r()));
      const a = await activateOnce({ host: '127.0.0.1', port }, {}, { nowMs: T0, seed: '10k-real' });
      expect(a.hresult).toBe(HResult.S_OK);
      await oldestClosed;
      const after = await child.whenOpen(n - 1); // the real client has gone too
      expect(after.evicted).toBe(1);
      expect(after.rejected).toBe(0);
      expect(clients[1]!.destroyed).toBe(false);
      // Memory: RSS growth per held connection (after GC), and the JS heap's share of it.
      const rssPer = (held.mem!.rss - before.rss) / n;
      const heapPer = (held.mem!.heapUsed - before.heapUsed) / n;
      console.info(
        `limits.test.ts: ${n} idle connections held; ` +
          `RSS +${(rssPer / 1024).toFixed(2)} KiB and heap +${(heapPer / 1024).toFixed(2)} KiB per connection`,
      );
      expect(rssPer).toBeLessThan(10 * 1024);
      expect(heapPer).toBeLessThan(8 * 1024);
      // Let them go: every connection is released.
      for (const s of clients.splice(0)) s.destroy();
      await child.whenOpen(0);
      // Nothing of them stays behind: the heap after GC is back near where it was (< 100 bytes each).
      const released = await child.mem();
      expect(released.open).toBe(0);
      const left = (released.mem!.heapUsed - before.heapUsed) / n;
      console.info(
        `limits.test.ts: after they closed, heap ${left >= 0 ? '+' : ''}${left.toFixed(1)} bytes per connection`,
      );
      expect(left).toBeLessThan(100);
    } finally {
      for (const s of clients) s.destroy();
      await child.close();
    }
  }, 60_000);
});
