/**
 * The host's resource limits (src/server/tcp.ts ServerLimits), each with its default and a test over
 * real loopback sockets. The server's own timers run for real with small values; the test only awaits
 * events (closes, answers, log lines) with bounded timeouts. Clients that pace their input (the idle
 * and drip-feed cases) use real timers because pacing is the behaviour under test.
 *
 * The 10,000-connection case runs the host in a child process (each process then holds 10,000
 * descriptors, under this machine's `ulimit -n`), scaled down with a message when the limit is lower.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { Duplex } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
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
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface LogLine {
  level: number;
  msg: string;
  connectionId?: number;
  unsent?: number;
}

interface Host {
  rt: HostRuntime;
  logs: LogLine[];
  /** Observations and log lines in the order they happened. */
  timeline: ({ t: 'obs'; o: ServerObservation } | { t: 'log'; l: LogLine })[];
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
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        const l = JSON.parse(line) as LogLine;
        logs.push(l);
        timeline.push({ t: 'log', l });
      },
    },
  );
  const rt = await startHostRuntime({
    listen: [{ host: '127.0.0.1', port: 0 }],
    store: 'memory',
    clock: 'manual',
    seed: 'limits',
    logger,
    limits,
  });
  runtimes.push(rt);
  rt.server.observe((o) => timeline.push({ t: 'obs', o }));
  return { rt, logs, timeline, addr: rt.addresses[0]! };
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

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(2);
  }
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
    const started = Date.now();
    big.write(header);
    await big.waitClose(2000);
    expect(Date.now() - started).toBeLessThan(1000); // not the 10 s idle timeout
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

describe('limits: time', () => {
  it('idle timeout (500 ms) is re-armed by every PDU: a PDU every 300 ms keeps the connection, silence closes it', async () => {
    const h = await host({ idleTimeoutMs: 500 });
    const id = nextConnectionId(h);
    const c = await RawKmsClient.connect(h.addr, { nowMs: T0, seed: 'idle', ndr64: false, btfn: false });
    sockets.push(c.conn);
    let lastAnswer = Date.now();
    for (let i = 0; i < 6; i++) {
      await sleep(300);
      expect(c.conn.isClosed, `closed before request ${i + 1}`).toBe(false);
      expect((await c.activate()).hresult).toBe(HResult.S_OK);
      lastAnswer = Date.now();
    }
    // 6 × 300 ms: well past the 500 ms timeout, still open. Now silence.
    await c.conn.waitClose(2000);
    const silent = Date.now() - lastAnswer;
    expect(silent).toBeGreaterThanOrEqual(480);
    expect(silent).toBeLessThan(1500);
    expect(logFor(h, 'idle timeout', await id)).toBeDefined();
  });

  it('idle timeout: bytes that never complete a PDU do not re-arm it', async () => {
    const h = await host({ idleTimeoutMs: 300 });
    const s = await open(h);
    const started = Date.now();
    const bind = bind32();
    let i = 0;
    while (!s.isClosed && i < bind.length - 1 && Date.now() - started < 3000) {
      s.write(bind.subarray(i, i + 1));
      i += 1;
      await Promise.race([sleep(60), s.closed]);
    }
    await s.waitClose(2000);
    const lived = Date.now() - started;
    expect(lived).toBeGreaterThanOrEqual(280);
    expect(lived).toBeLessThan(1500);
    expect(s.received).toEqual([]);
  });

  it('lifetime 500 ms: a client dripping one byte every 50 ms is closed (idle timeout 10 s)', async () => {
    const h = await host({ maxConnectionLifetimeMs: 500, idleTimeoutMs: 10_000 });
    const id = nextConnectionId(h);
    const s = await open(h);
    const started = Date.now();
    const bytes = Buffer.concat([bind32(), requestBytes(3, 0, paddedStub(300, 'drip').stub)]);
    for (let i = 0; i < bytes.length && !s.isClosed && Date.now() - started < 5000; i++) {
      s.write(bytes.subarray(i, i + 1));
      await Promise.race([sleep(50), s.closed]);
    }
    await s.waitClose(2000);
    const lived = Date.now() - started;
    expect(lived).toBeGreaterThanOrEqual(480);
    expect(lived).toBeLessThan(2000);
    expect(logFor(h, 'connection lifetime exceeded', await id)).toBeDefined();
  });

  // The idle timer has room for a PDU that takes twice as long as planned (a loaded CI machine).
  it('lifetime 1500 ms: also ends a client that keeps the idle timer (700 ms) happy with a PDU every 320 ms', async () => {
    const h = await host({ maxConnectionLifetimeMs: 1500, idleTimeoutMs: 700 });
    const id = nextConnectionId(h);
    const s = await open(h);
    const started = Date.now();
    // co_cancel PDUs (16 bytes, no answer), one byte every 20 ms.
    const cancel = Uint8Array.of(5, 0, 18, 3, 0x10, 0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0);
    for (let i = 0; !s.isClosed && Date.now() - started < 5000; i++) {
      s.write(cancel.subarray(i % 16, (i % 16) + 1));
      await Promise.race([sleep(20), s.closed]);
    }
    await s.waitClose(2000);
    const lived = Date.now() - started;
    expect(lived).toBeGreaterThanOrEqual(1480);
    expect(lived).toBeLessThan(3500);
    const cid = await id;
    expect(logFor(h, 'connection lifetime exceeded', cid)).toBeDefined();
    expect(logFor(h, 'idle timeout', cid)).toBeUndefined();
  });
});

describe('limits: requests and unsent bytes', () => {
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
      await c.conn.waitClose(2000);
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

  /** A client that sends requests and never reads; returns once the host dropped it (or after 20 s). */
  async function neverReads(h: Host, seed: string): Promise<{ id: number; sent: number }> {
    const id = nextConnectionId(h);
    const s = net.connect({ host: h.addr.host, port: h.addr.port });
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    s.pause(); // never read: the host's answers pile up in the kernel, then in the host
    let closed = false;
    s.once('close', () => {
      closed = true;
    });
    const r = new SeededRandom(seed);
    const req = requestBytes(3, 0, activationStub(requestBody(r, {}, T0), 'ndr32', r).stub);
    const batch = Buffer.concat(Array.from({ length: 100 }, () => req));
    s.write(bind32());
    const cid = await id;
    let sent = 0;
    const started = Date.now();
    const dropped = () =>
      h.logs.some((l) => l.msg.startsWith('client does not read') && l.connectionId === cid);
    while (!closed && !dropped() && Date.now() - started < 20_000) {
      if (!s.write(batch)) await Promise.race([new Promise((res) => s.once('drain', res)), sleep(50)]);
      sent += 100;
    }
    s.destroy();
    return { id: cid, sent };
  }

  it('maxUnsentBytes 16 KiB: a client that never reads is dropped once 16 KiB wait for it; others are served', async () => {
    const cap = 16 * 1024;
    const h = await host({ maxUnsentBytes: cap, maxRequestsPerConnection: 1_000_000 });
    const { id, sent } = await neverReads(h, 'unsent');
    const drop = logFor(h, 'client does not read', id);
    expect(drop, `not dropped after ${sent} requests`).toBeDefined();
    // Checked after every write: over the cap by at most one answer (a KMS response is < 400 bytes).
    expect(drop!.unsent!).toBeGreaterThan(cap);
    expect(drop!.unsent!).toBeLessThanOrEqual(cap + 400);
    await until(
      () =>
        h.timeline.some((e) => e.t === 'obs' && e.o.kind === 'connection-close' && e.o.connectionId === id),
      3000,
      'the close of the dropped connection',
    );
    await expectServed(h);
    await until(() => h.rt.server.openConnections === 0, 3000, 'every connection closed');
  });

  // send() destroys the socket once the unsent bytes pass the cap; the calls read in the same chunk after
  // that must be neither run nor counted. Deterministic: a socket whose writes never complete, and one
  // chunk holding a bind and 200 requests.
  it('maxUnsentBytes: nothing is run on a connection after it was dropped', async () => {
    const h = await host({ maxUnsentBytes: 16 * 1024, maxRequestsPerConnection: 1_000_000 });
    const calls: number[] = [];
    h.rt.server.observe((o) => {
      if (o.kind === 'call') calls.push(h.logs.length);
    });
    const stuck = new Duplex({
      read() {},
      write(_chunk, _enc, _done) {
        // never completes: every answer stays queued, as for a client that does not read
      },
    });
    Object.assign(stuck, { remoteAddress: '192.0.2.1', remotePort: 40000, localPort: 1688, setNoDelay() {} });
    (h.rt.server as unknown as { accept(s: Duplex): void }).accept(stuck);
    const r = new SeededRandom('stuck');
    const req = requestBytes(3, 0, activationStub(requestBody(r, {}, T0), 'ndr32', r).stub);
    stuck.emit('data', Buffer.concat([bind32(), ...Array.from({ length: 200 }, () => req)]));
    // Answers go out at the end of each event-loop turn (group commit): let the turns run until the drop.
    for (let turn = 0; turn < 2000 && !stuck.destroyed; turn++) await new Promise((r) => setImmediate(r));
    expect(stuck.destroyed).toBe(true);
    const drops = h.logs.filter((l) => l.msg.startsWith('client does not read'));
    expect(drops.length).toBeGreaterThanOrEqual(1);
    const dropAt = h.logs.indexOf(drops[0]!);
    // About 16 KiB / 300 bytes ≈ 55 answers fit; none of the other requests may run.
    expect(calls.filter((at) => at > dropAt)).toEqual([]);
    expect(h.rt.store.historyCount()).toBeLessThan(60);
    expect(drops).toHaveLength(1);
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
  mem?: NodeJS.MemoryUsage;
}

/** The host in a child process with --expose-gc, driven over IPC ('count', 'mem', 'close'). */
class ChildHost {
  private readonly child: ChildProcess;
  private readonly inbox: ChildStats[] = [];
  private wake: (() => void) | null = null;
  readonly exited: Promise<number | null>;

  constructor(limits: Partial<ServerLimits>) {
    const runtime = new URL('../../src/server/runtime.ts', import.meta.url).href;
    const code = `
      const { startHostRuntime } = await import(${JSON.stringify(runtime)});
      const rt = await startHostRuntime({
        listen: [{ host: '127.0.0.1', port: 0 }], store: 'memory', clock: 'manual', seed: 'limits-10k',
        limits: JSON.parse(process.env.KMSLAB_TEST_LIMITS),
      });
      let rejected = 0;
      rt.server.observe((o) => { if (o.kind === 'connection-rejected') rejected += 1; });
      const stats = (mem) => {
        if (mem) { globalThis.gc(); globalThis.gc(); }
        return { open: rt.server.openConnections, rejected, ...(mem ? { mem: process.memoryUsage() } : {}) };
      };
      process.on('message', async (m) => {
        if (m === 'close') { await rt.close(); process.disconnect(); return; }
        process.send(stats(m === 'mem'));
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

  async next(timeoutMs = 15_000): Promise<ChildStats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.inbox.shift();
      if (m) return m;
      if (Date.now() > deadline) throw new Error('the child host did not answer');
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  async ask(what: 'count' | 'mem'): Promise<ChildStats> {
    this.child.send(what);
    return this.next();
  }

  async close(): Promise<void> {
    if (this.child.connected) this.child.send('close');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

describe('limits: concurrent connections', () => {
  it('10,000 idle connections are held within the cap, the next one is refused, memory stays bounded and is released', async () => {
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
      const hello = await child.next();
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
      for (const s of warm) s.destroy();
      for (let st = await child.ask('count'); st.open !== 0; st = await child.ask('count')) await sleep(10);
      const before = (await child.ask('mem')).mem!;
      // Open in batches, each accepted before the next (the listen backlog is 511).
      const batch = 250;
      const started = Date.now();
      for (let i = 0; i < n; i += batch) {
        clients.push(...(await Promise.all(Array.from({ length: Math.min(batch, n - i) }, connect))));
        for (let st = await child.ask('count'); st.open < clients.length; st = await child.ask('count')) {
          if (Date.now() - started > 60_000) throw new Error(`only ${st.open} of ${clients.length} accepted`);
          await sleep(5);
        }
      }
      const held = await child.ask('mem');
      expect(held.open).toBe(n);
      expect(held.rejected).toBe(0);
      // The next one is refused at once: closed by the host without a byte.
      const extra = await connect();
      const got: Buffer[] = [];
      extra.on('data', (d) => got.push(d));
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('connection over the cap still open after 3 s')), 3000);
        extra.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
      expect(got).toEqual([]);
      const after = await child.ask('count');
      expect(after.rejected).toBe(1);
      expect(after.open).toBe(n);
      // Memory: RSS growth per held connection (after GC), and the JS heap's share of it.
      const rssPer = (held.mem!.rss - before.rss) / n;
      const heapPer = (held.mem!.heapUsed - before.heapUsed) / n;
      console.info(
        `limits.test.ts: ${n} idle connections opened in ${Date.now() - started} ms; ` +
          `RSS +${(rssPer / 1024).toFixed(2)} KiB and heap +${(heapPer / 1024).toFixed(2)} KiB per connection`,
      );
      expect(rssPer).toBeLessThan(10 * 1024);
      expect(heapPer).toBeLessThan(8 * 1024);
      // Let them go: every connection is released.
      for (const s of clients.splice(0)) s.destroy();
      for (let st = await child.ask('count'), t = Date.now(); st.open !== 0; st = await child.ask('count')) {
        if (Date.now() - t > 15_000) throw new Error(`${st.open} connections still open`);
        await sleep(20);
      }
      // Nothing of them stays behind: the heap after GC is back near where it was (< 100 bytes each).
      const released = await child.ask('mem');
      expect(released.open).toBe(0);
      const left = (released.mem!.heapUsed - before.heapUsed) / n;
      console.info(
        `limits.test.ts: after they closed, heap ${left >= 0 ? '+' : ''}${left.toFixed(1)} bytes per connection`,
      );
      expect(left).toBeLessThan(100);
      // A valid client is served by the child host.
      const a = await activateOnce({ host: '127.0.0.1', port }, {}, { nowMs: T0, seed: '10k-after' });
      expect(a.hresult).toBe(HResult.S_OK);
    } finally {
      for (const s of clients) s.destroy();
      await child.close();
    }
  }, 90_000);
});
