/**
 * Load bench: many simulated clients against a kmslab host over loopback TCP.
 *
 * Phases (bounded in time and count):
 * - `conversations`: each conversation is a new TCP connection carrying what Windows sends (bind with
 *   NDR32 + NDR64 + BTFN, alter_context for NDR32, one V6 request), closed with an RST; concurrency 64.
 * - `keepalive`: each worker binds once and repeats V6 requests on the connection; concurrency 8.
 *
 * The PDUs are encoded once before the run (64 distinct clients), so the generator only writes bytes
 * and frames answers; one answer per distinct client is verified completely (RPC + KMS V6 checks)
 * before the run, and during it every answer must have the PDU type and length of that verified one.
 *
 * The host is started in this process on 127.0.0.1:0 by default (`--host child` runs it in a child
 * process so generator and host do not share an event loop), or `--target HOST:PORT` points at another
 * (loopback only).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { defaultCatalog } from '../src/catalog/products.js';
import { ManualClock } from '../src/host/clock.js';
import { randomGuid, SeededRandom } from '../src/host/random.js';
import { encodeRequest, verifyResponse } from '../src/kms/envelope.js';
import type { RequestContext } from '../src/kms/messages.js';
import { unwrapResponseStub, wrapRequestStub } from '../src/kms/stub.js';
import {
  DREP_LE,
  HOST_MAX_FRAG,
  KMS_INTERFACE,
  NDR32_SYNTAX,
  NDR64_SYNTAX,
  PFC,
  PTYPE,
  RPC_VERSION_MINOR,
} from '../src/rpc/constants.js';
import { decodePdu } from '../src/rpc/decode.js';
import { encodePdu } from '../src/rpc/encode.js';
import { btfnTransferSyntax, type PresentationContext, transferSyntax } from '../src/rpc/pdu.js';
import { type HostRuntime, startHostRuntime } from '../src/server/runtime.js';
import { fileTimeFromMs } from '../src/wire/filetime.js';
import {
  type BenchRow,
  type BenchSection,
  benchRequestBody,
  isMain,
  num,
  parseArgs,
  rssMB,
  runStandalone,
} from './common.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DISTINCT = 64;
const MAX_COUNT = 2_000_000;

interface Conversation {
  setup: Buffer[];
  request: Buffer;
  /** Expected (ptype, length) of each answer: bind_ack, alter_context_resp, response. */
  expect: { ptype: number; len: number }[];
  context: RequestContext;
}

function contextEl(id: number, ts: ReturnType<typeof transferSyntax>): PresentationContext {
  return {
    contextId: id,
    abstractSyntax: {
      uuid: KMS_INTERFACE.uuid,
      versionMajor: KMS_INTERFACE.versionMajor,
      versionMinor: KMS_INTERFACE.versionMinor,
    },
    transferSyntaxes: [ts],
  };
}

/** Bind / alter_context / request bytes as a Windows 10 client sends them, with a V6 request. */
export function buildConversations(n: number, startMs: number): Conversation[] {
  const sku = defaultCatalog().findSku('Windows 10/11 Enterprise');
  const r = new SeededRandom('load-clients');
  const common = { rpcVersionMinor: RPC_VERSION_MINOR, drep: DREP_LE };
  const flags = PFC.FIRST_FRAG | PFC.LAST_FRAG | PFC.CONC_MPX;
  const bindBody = {
    ...common,
    flags,
    callId: 2,
    maxXmitFrag: HOST_MAX_FRAG,
    maxRecvFrag: HOST_MAX_FRAG,
    assocGroupId: 0,
  };
  const bind = Buffer.from(
    encodePdu({
      type: PTYPE.BIND,
      ...bindBody,
      contexts: [
        contextEl(0, transferSyntax(NDR32_SYNTAX.uuid, NDR32_SYNTAX.version)),
        contextEl(1, transferSyntax(NDR64_SYNTAX.uuid, NDR64_SYNTAX.version)),
        contextEl(2, btfnTransferSyntax(0x03)),
      ],
    }),
  );
  const alter = Buffer.from(
    encodePdu({
      type: PTYPE.ALTER_CONTEXT,
      ...bindBody,
      contexts: [contextEl(0, transferSyntax(NDR32_SYNTAX.uuid, NDR32_SYNTAX.version))],
    }),
  );
  const out: Conversation[] = [];
  for (let i = 0; i < n; i++) {
    const { message, context } = encodeRequest(
      benchRequestBody(sku, 6, randomGuid(r), fileTimeFromMs(startMs), `LOAD-${String(i).padStart(4, '0')}`),
      { random: (k) => r.bytes(k) },
    );
    const stub = wrapRequestStub(message, 'ndr32');
    const request = Buffer.from(
      encodePdu({
        type: PTYPE.REQUEST,
        ...common,
        flags: PFC.FIRST_FRAG | PFC.LAST_FRAG,
        callId: 3,
        allocHint: stub.length,
        contextId: 0,
        opnum: 0,
        stub,
      }),
    );
    out.push({ setup: [bind, alter], request, expect: [], context });
  }
  return out;
}

type Kind = string;
const err = (kind: Kind) => Object.assign(new Error(kind), { kind });

/** A framed PDU reader over one socket. */
class Conn {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: { res: (b: Buffer) => void; rej: (e: Error) => void; t: NodeJS.Timeout } | null = null;
  private error: NodeJS.ErrnoException | null = null;
  private ended = false;
  readonly sock: net.Socket;
  readonly ready: Promise<void>;

  constructor(
    host: string,
    port: number,
    private readonly timeoutMs: number,
  ) {
    this.sock = net.connect({ host, port });
    this.sock.setNoDelay(true);
    this.ready = new Promise((res, rej) => {
      this.sock.once('connect', () => res());
      this.sock.once('error', (e: NodeJS.ErrnoException) => rej(err(`connect_${e.code ?? 'error'}`)));
    });
    this.sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.pump();
    });
    this.sock.on('error', (e: NodeJS.ErrnoException) => {
      this.error = e;
      this.pump();
    });
    this.sock.on('close', () => {
      this.ended = true;
      this.pump();
    });
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.buf.length >= 10) {
      const fl = this.buf.readUInt16LE(8);
      if (this.buf.length >= fl && fl >= 16) {
        const p = this.buf.subarray(0, fl);
        this.buf = this.buf.subarray(fl);
        this.waiter = null;
        clearTimeout(w.t);
        w.res(p);
        return;
      }
    }
    if (this.error || this.ended) {
      this.waiter = null;
      clearTimeout(w.t);
      w.rej(
        err(
          this.error
            ? this.error.code === 'ECONNRESET'
              ? 'reset'
              : `socket_${this.error.code}`
            : this.buf.length
              ? 'closed_mid_pdu'
              : 'closed_by_host',
        ),
      );
    }
  }

  next(): Promise<Buffer> {
    return new Promise((res, rej) => {
      const t = setTimeout(() => {
        this.waiter = null;
        rej(err('timeout'));
      }, this.timeoutMs);
      this.waiter = { res, rej, t };
      this.pump();
    });
  }

  write(b: Buffer): void {
    this.sock.write(b);
  }

  close(rst: boolean): void {
    if (rst && !this.sock.destroyed) {
      try {
        this.sock.resetAndDestroy();
        return;
      } catch {
        // fall through
      }
    }
    this.sock.destroy();
  }
}

async function exchange(c: Conn, send: Buffer, expect: { ptype: number; len: number }): Promise<Buffer> {
  c.write(send);
  const p = await c.next();
  if (p[2] !== expect.ptype) {
    throw err(
      p[2] === PTYPE.FAULT ? `fault_0x${p.readUInt32LE(24).toString(16).padStart(8, '0')}` : `ptype_${p[2]}`,
    );
  }
  if (p.length !== expect.len) throw err(`length_${p.length}_vs_${expect.len}`);
  return p;
}

/** One full conversation, checking the answer completely; fills `conv.expect`. */
async function preflight(host: string, port: number, conv: Conversation): Promise<void> {
  const c = new Conn(host, port, 5000);
  try {
    await c.ready;
    const lens: { ptype: number; len: number }[] = [];
    for (const s of conv.setup) {
      c.write(s);
      const p = await c.next();
      lens.push({ ptype: p[2]!, len: p.length });
    }
    c.write(conv.request);
    const p = await c.next();
    const pdu = decodePdu(new Uint8Array(p));
    if (pdu.type !== PTYPE.RESPONSE) throw new Error(`preflight: expected a response, got PTYPE ${pdu.type}`);
    const u = unwrapResponseStub(pdu.stub, 'ndr32');
    if (!u.message || u.hresult !== 0)
      throw new Error(`preflight: host answered HRESULT 0x${u.hresult.toString(16)}`);
    verifyResponse(u.message, conv.context);
    lens.push({ ptype: p[2]!, len: p.length });
    if (lens[0]!.ptype !== PTYPE.BIND_ACK || lens[1]!.ptype !== PTYPE.ALTER_CONTEXT_RESP) {
      throw new Error(`preflight: bind answered with PTYPEs ${lens.map((x) => x.ptype).join(',')}`);
    }
    conv.expect = lens;
  } finally {
    c.close(true);
  }
}

export interface PhaseResult {
  mode: 'conversation' | 'keepalive';
  concurrency: number;
  seconds: number;
  ok: number;
  failed: number;
  connections: number;
  perSecond: number;
  latencyMs: { p50: number | null; p99: number | null; max: number | null; mean: number | null };
  errors: Record<string, number>;
  hostRssMB: number | null;
}

async function phase(
  host: string,
  port: number,
  convs: Conversation[],
  mode: 'conversation' | 'keepalive',
  concurrency: number,
  seconds: number,
  rss: () => number | null,
): Promise<PhaseResult> {
  const lat: number[] = [];
  const errors: Record<string, number> = {};
  let started = 0;
  let ok = 0;
  let failed = 0;
  let connections = 0;
  let rssMax = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const more = () => started < MAX_COUNT && performance.now() < deadline;
  const fail = (e: unknown) => {
    failed++;
    const k = (e as { kind?: string }).kind ?? 'exception';
    errors[k] = (errors[k] ?? 0) + 1;
  };
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, rss() ?? 0);
  }, 250);
  const open = async () => {
    const c = new Conn(host, port, 5000);
    await c.ready;
    connections++;
    return c;
  };
  async function oneShot(w: number) {
    let k = w;
    while (more()) {
      started++;
      const conv = convs[k++ % convs.length]!;
      const ts = performance.now();
      let c: Conn | null = null;
      try {
        c = await open();
        await exchange(c, conv.setup[0]!, conv.expect[0]!);
        await exchange(c, conv.setup[1]!, conv.expect[1]!);
        await exchange(c, conv.request, conv.expect[2]!);
        lat.push(performance.now() - ts);
        ok++;
      } catch (e) {
        fail(e);
      } finally {
        c?.close(true);
      }
    }
  }
  async function keepalive(w: number) {
    const conv = convs[w % convs.length]!;
    let c: Conn | null = null;
    while (more()) {
      try {
        if (!c) {
          c = await open();
          await exchange(c, conv.setup[0]!, conv.expect[0]!);
          await exchange(c, conv.setup[1]!, conv.expect[1]!);
        }
      } catch (e) {
        started++;
        fail(e);
        c?.close(true);
        c = null;
        continue;
      }
      started++;
      const ts = performance.now();
      try {
        await exchange(c, conv.request, conv.expect[2]!);
        lat.push(performance.now() - ts);
        ok++;
      } catch (e) {
        fail(e);
        c.close(true);
        c = null;
      }
    }
    c?.close(false);
  }
  const workers: Promise<void>[] = [];
  for (let i = 0; i < concurrency; i++) workers.push(mode === 'keepalive' ? keepalive(i) : oneShot(i));
  await Promise.all(workers);
  clearInterval(sampler);
  rssMax = Math.max(rssMax, rss() ?? 0);
  const el = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! : null);
  const r3 = (x: number | null) => (x === null ? null : Math.round(x * 1000) / 1000);
  return {
    mode,
    concurrency,
    seconds: r3(el)!,
    ok,
    failed,
    connections,
    perSecond: Math.round(ok / el),
    latencyMs: {
      p50: r3(q(0.5)),
      p99: r3(q(0.99)),
      max: r3(lat.at(-1) ?? null),
      mean: r3(lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null),
    },
    errors,
    hostRssMB: rssMax || null,
  };
}

export function procRssMB(pid: number): number | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(s);
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : null;
  } catch {
    return null;
  }
}

async function startChildHost(store: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(HERE, 'host-child.ts'), '--store', store],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const rl = createInterface({ input: child.stdout! });
  const line = await new Promise<string>((res, rej) => {
    rl.once('line', res);
    child.once('exit', (code) => rej(new Error(`host child exited with ${code}`)));
  });
  rl.close();
  return { port: (JSON.parse(line) as { port: number }).port, child };
}

export interface LoadBenchOptions {
  /** HOST:PORT of another host (loopback only); default: start one. */
  target?: string;
  /** 'in-process' (default) or 'child'. */
  host?: 'in-process' | 'child';
  /** Store of the started host: 'memory' (default) or a SQLite path. */
  store?: string;
  seconds?: number;
  conversationConcurrency?: number;
  keepaliveConcurrency?: number;
}

export async function runLoadBench(opts: LoadBenchOptions = {}): Promise<BenchSection> {
  const seconds = opts.seconds ?? 4;
  const store = opts.store ?? 'memory';
  let host = '127.0.0.1';
  let port: number;
  let rt: HostRuntime | null = null;
  let child: ChildProcess | null = null;
  let rss: () => number | null;
  let where: string;
  const startMs = Date.now();
  if (opts.target) {
    const [h, p] = opts.target.split(':');
    host = h || '127.0.0.1';
    port = Number(p);
    if (!['127.0.0.1', 'localhost', '::1'].includes(host) && !host.startsWith('127.')) {
      throw new Error(`load bench: refusing non-loopback target ${opts.target}`);
    }
    rss = () => null;
    where = `target ${opts.target}`;
  } else if (opts.host === 'child') {
    const c = await startChildHost(store);
    child = c.child;
    port = c.port;
    rss = () => procRssMB(child!.pid!);
    where = `kmslab host in a child process (store ${store})`;
  } else {
    rt = await startHostRuntime({ listen: [{ host, port: 0 }], store, clock: 'manual', seed: 'bench-load' });
    if (rt.clock instanceof ManualClock) rt.clock.set(startMs);
    port = rt.addresses[0]!.port;
    rss = () => rssMB();
    where = `kmslab host in this process (store ${store}; RSS is host + generator)`;
  }
  try {
    const convs = buildConversations(DISTINCT, startMs);
    for (const c of convs) await preflight(host, port, c);
    const conv = await phase(
      host,
      port,
      convs,
      'conversation',
      opts.conversationConcurrency ?? 64,
      seconds,
      rss,
    );
    const keep = await phase(host, port, convs, 'keepalive', opts.keepaliveConcurrency ?? 8, seconds, rss);
    const errs = (p: PhaseResult) =>
      Object.keys(p.errors).length
        ? Object.entries(p.errors)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')
        : 'none';
    const rows: BenchRow[] = [];
    for (const p of [conv, keep]) {
      const label =
        p.mode === 'conversation' ? `conversations c=${p.concurrency}` : `keep-alive c=${p.concurrency}`;
      rows.push(
        {
          metric: `${label}`,
          value: p.perSecond,
          unit: p.mode === 'conversation' ? 'conv/s' : 'req/s',
          note: `${p.ok} ok, ${p.failed} failed in ${p.seconds} s`,
        },
        { metric: `${label} latency p50/p99`, value: `${p.latencyMs.p50}/${p.latencyMs.p99}`, unit: 'ms' },
        { metric: `${label} errors`, value: p.failed, unit: '', note: errs(p) },
        { metric: `${label} host RSS max`, value: p.hostRssMB ?? 'n/a', unit: 'MB' },
      );
    }
    return { name: 'load', rows, data: { host: where, seconds, conversation: conv, keepalive: keep } };
  } finally {
    if (rt) await rt.close();
    if (child) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
  }
}

if (isMain(import.meta.url)) {
  const { flags } = parseArgs(process.argv.slice(2));
  await runStandalone('load', () =>
    runLoadBench({
      ...(typeof flags['target'] === 'string' ? { target: flags['target'] } : {}),
      host: flags['host'] === 'child' ? 'child' : 'in-process',
      ...(typeof flags['store'] === 'string' ? { store: flags['store'] } : {}),
      seconds: num(flags['seconds'], 4),
      conversationConcurrency: num(flags['c1'], 64),
      keepaliveConcurrency: num(flags['c2'], 8),
    }),
  );
}
