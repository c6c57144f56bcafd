/**
 * Soak: a steady rate of activations against an in-process host over loopback, for minutes, watching
 * for slow leaks and event-loop stalls.
 *
 *   tsx --expose-gc bench/soak.ts [--minutes 10] [--rate 2000] [--connections 16] [--depth 4] [--sample 5]
 *                                 [--churn 0.02] [--store sqlite|memory] [--json FILE]
 *
 * - The host is startHostRuntime on 127.0.0.1:0 with the default limits and, by default, a SQLite store
 *   in a temporary directory (deleted at the end). The memory store keeps the newest 10,000 history
 *   rows in memory: at 2000/s it grows by design for the first 5 s, so give it a longer run.
 * - The generator keeps `connections` bound NDR32 connections with up to `depth` calls in flight each,
 *   and paces requests to `rate` per second (10 ms ticks). A share `churn` of the activations uses a new
 *   connection (bind, request, close), so accept and close paths run all the time too. Requests are
 *   V4, V5 and V6 (1:1:8) from 4096 pre-encoded clients with distinct CMIDs (the pools stay at their
 *   caps, as on a real host); every answer must be a response of the expected length, and one in 64 is
 *   verified completely (RPC + KMS checks).
 * - Every `sample` seconds (after a forced full GC when node runs with --expose-gc, as `npm run soak`
 *   does, so the heap trend is not the GC sawtooth): RSS, heap, achieved rate, client-side latency and event-loop delay
 *   (perf_hooks.monitorEventLoopDelay at a 10 ms resolution, reported minus those 10 ms; host and
 *   generator share the loop, so the delay and the latency include the generator's work).
 * - The result: RSS and heap growth as the least-squares slope over the second half (MB per minute, after
 *   warm-up), p99 loop delay, latency percentiles, errors. A table, then one JSON line.
 *
 * Bounded: at most 120 minutes; SIGINT stops early and still reports.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { defaultCatalog } from '../src/catalog/products.js';
import { randomGuid, SeededRandom } from '../src/host/random.js';
import { encodeRequest, verifyResponse } from '../src/kms/envelope.js';
import type { KmsVersion, RequestContext } from '../src/kms/messages.js';
import { unwrapResponseStub, wrapRequestStub } from '../src/kms/stub.js';
import { DREP_LE, HOST_MAX_FRAG, KMS_INTERFACE, NDR32_SYNTAX, PFC, PTYPE } from '../src/rpc/constants.js';
import { decodePdu } from '../src/rpc/decode.js';
import { encodePdu } from '../src/rpc/encode.js';
import { transferSyntax } from '../src/rpc/pdu.js';
import { startHostRuntime } from '../src/server/runtime.js';
import { DEFAULT_LIMITS } from '../src/server/tcp.js';
import { fileTimeFromMs } from '../src/wire/filetime.js';
import { NIL_GUID } from '../src/wire/guid.js';
import { machine, num, parseArgs } from './common.js';

const { flags } = parseArgs(process.argv.slice(2));
const minutes = Math.min(120, num(flags['minutes'], 10));
const rate = num(flags['rate'], 2000);
const connections = Math.floor(num(flags['connections'], 16));
const depth = Math.floor(num(flags['depth'], 4));
const sampleS = num(flags['sample'], 5);
const churn = flags['churn'] === undefined || flags['churn'] === true ? 0.02 : Number(flags['churn']);
const storeKind = flags['store'] === 'memory' ? 'memory' : 'sqlite';
const jsonOut = typeof flags['json'] === 'string' ? flags['json'] : null;
if (!(churn >= 0 && churn <= 1)) throw new RangeError('--churn must be between 0 and 1');

// ---------------------------------------------------------------------------------------------------
// Pre-encoded clients

interface Client {
  request: Buffer;
  context: RequestContext;
  /** Expected length of the answer PDU. */
  answerLength: number;
}

const CALL_ID_AT = 12;

const bind = Buffer.from(
  encodePdu({
    type: PTYPE.BIND,
    flags: PFC.FIRST_FRAG | PFC.LAST_FRAG | PFC.CONC_MPX,
    callId: 2,
    rpcVersionMinor: 0,
    drep: DREP_LE,
    maxXmitFrag: HOST_MAX_FRAG,
    maxRecvFrag: HOST_MAX_FRAG,
    assocGroupId: 0,
    contexts: [
      {
        contextId: 0,
        abstractSyntax: {
          uuid: KMS_INTERFACE.uuid,
          versionMajor: KMS_INTERFACE.versionMajor,
          versionMinor: KMS_INTERFACE.versionMinor,
        },
        transferSyntaxes: [transferSyntax(NDR32_SYNTAX.uuid, NDR32_SYNTAX.version)],
      },
    ],
  }),
);

function buildClients(n: number): Client[] {
  const sku = defaultCatalog().findSku('Windows 10/11 Enterprise');
  const r = new SeededRandom('soak-clients');
  const out: Client[] = [];
  for (let i = 0; i < n; i++) {
    const version: KmsVersion = i % 10 === 0 ? 4 : i % 10 === 1 ? 5 : 6;
    const { message, context } = encodeRequest(
      {
        minorVersion: 0,
        majorVersion: version,
        vmInfo: i % 3 === 0 ? 1 : 0,
        licenseStatus: 2,
        bindingExpiration: 43_200,
        applicationId: sku.applicationId,
        skuId: sku.id,
        kmsId: sku.kmsId,
        cmid: randomGuid(r),
        requiredClientCount: 25,
        clientTime: fileTimeFromMs(Date.now()),
        previousCmid: NIL_GUID,
        workstation: `SOAK-${String(i).padStart(5, '0')}`,
      },
      { random: (k) => r.bytes(k) },
    );
    const stub = wrapRequestStub(message, 'ndr32');
    const request = Buffer.from(
      encodePdu({
        type: PTYPE.REQUEST,
        flags: PFC.FIRST_FRAG | PFC.LAST_FRAG,
        callId: 3,
        rpcVersionMinor: 0,
        drep: DREP_LE,
        allocHint: stub.length,
        contextId: 0,
        opnum: 0,
        stub,
      }),
    );
    out.push({ request, context, answerLength: 0 });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Connections

interface Pending {
  client: Client;
  sent: bigint;
  verify: boolean;
}

const latency = createHistogram();
let intervalLatency = createHistogram();
const counters = { sent: 0, done: 0, errors: 0, churned: 0, reconnects: 0, limitCloses: 0 };
/** Issues the requests that are due (set by main). */
let pump: (() => void) | null = null;
/** Calls to send again (their connection reached the host's request limit before running them). */
const retry: Client[] = [];
const errorKinds = new Map<string, number>();
function fail(kind: string): void {
  counters.errors += 1;
  errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
}

/** Checks one answer PDU against its call; returns an error kind or null. */
function checkAnswer(pdu: Buffer, p: Pending): string | null {
  if (pdu[2] !== PTYPE.RESPONSE) return `ptype_${pdu[2]}`;
  if (p.client.answerLength === 0 || p.verify) {
    try {
      const d = decodePdu(pdu);
      if (d.type !== PTYPE.RESPONSE) return 'not_a_response';
      const { hresult, message } = unwrapResponseStub(d.stub, 'ndr32');
      if (hresult !== 0 || !message) return `hresult_${hresult.toString(16)}`;
      verifyResponse(message, p.client.context);
      p.client.answerLength = pdu.length;
    } catch (e) {
      return `verify_${(e as { code?: string }).code ?? 'error'}`;
    }
  } else if (pdu.length !== p.client.answerLength) return 'length';
  return null;
}

/** One bound connection carrying up to `depth` calls; answers come back in call order. */
class Conn {
  readonly sock: net.Socket;
  readonly pending: Pending[] = [];
  bound = false;
  dead = false;
  private buf: Buffer = Buffer.alloc(0);
  private nextCallId = 3;
  private answered = 0;

  constructor(
    port: number,
    private readonly onDead: (c: Conn) => void,
    private readonly once = false,
  ) {
    this.sock = net.connect({ host: '127.0.0.1', port, noDelay: true });
    this.sock.write(bind);
    this.sock.on('data', (d: Buffer) => this.onData(d));
    let error: string | null = null;
    this.sock.on('error', (e: NodeJS.ErrnoException) => {
      error = `socket_${e.code ?? 'error'}`;
    });
    this.sock.on('close', () => {
      this.dead = true;
      if (this.answered >= DEFAULT_LIMITS.maxRequestsPerConnection) {
        // The host's request limit per connection: it answered the last allowed call and closed (a write
        // racing the close may see EPIPE). The calls sent behind it were never run nor counted: send them
        // again elsewhere.
        counters.limitCloses += 1;
        for (const p of this.pending.splice(0)) retry.push(p.client);
      } else if (error && (!this.once || this.pending.length > 0)) fail(error);
      for (const _ of this.pending.splice(0)) fail('closed_with_calls');
      this.onDead(this);
    });
  }

  send(client: Client, verify: boolean): void {
    const req = Buffer.from(client.request);
    req.writeUInt32LE(this.nextCallId++ >>> 0, CALL_ID_AT);
    this.pending.push({ client, sent: process.hrtime.bigint(), verify });
    counters.sent += 1;
    this.sock.write(req);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 16) {
      const len = this.buf.readUInt16LE(8);
      if (len < 16) {
        fail('bad_frag_length');
        this.sock.destroy();
        return;
      }
      if (this.buf.length < len) break;
      const pdu = this.buf.subarray(0, len);
      this.buf = this.buf.subarray(len);
      if (!this.bound) {
        if (pdu[2] !== PTYPE.BIND_ACK) fail('bind');
        this.bound = true;
        continue;
      }
      const p = this.pending.shift();
      if (!p) {
        fail('unexpected_pdu');
        continue;
      }
      this.answered += 1;
      const bad = checkAnswer(pdu, p);
      if (bad) fail(bad);
      else {
        const ns = Number(process.hrtime.bigint() - p.sent);
        latency.record(Math.max(1, ns));
        intervalLatency.record(Math.max(1, ns));
        counters.done += 1;
      }
      pump?.();
      if (this.once && this.pending.length === 0) {
        counters.churned += 1;
        this.sock.destroy();
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The run

interface Sample {
  t: number;
  rssMB: number;
  heapMB: number;
  externalMB: number;
  rate: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  loopP50Ms: number;
  loopP99Ms: number;
  loopMaxMs: number;
  open: number;
  backlog: number;
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const mb = (b: number) => r2(b / 1024 / 1024);
const ms = (ns: number) => r2(ns / 1e6);
/**
 * monitorEventLoopDelay records the whole interval between its timer's runs (an idle process shows
 * p50 ≈ 10.2 ms at a 10 ms resolution), so the delay is the recorded value minus the resolution.
 */
const LOOP_RESOLUTION_MS = 10;
const delayMs = (ns: number) => Math.max(0, r2(ns / 1e6 - LOOP_RESOLUTION_MS));

/** Least-squares slope of y over x. */
function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num2 = 0;
  let den = 0;
  for (const p of points) {
    num2 += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num2 / den;
}

async function main(): Promise<void> {
  const dir = storeKind === 'sqlite' ? fs.mkdtempSync(path.join(os.tmpdir(), 'kmslab-soak-')) : null;
  const rt = await startHostRuntime({
    listen: [{ host: '127.0.0.1', port: 0 }],
    store: dir ? path.join(dir, 'soak.sqlite') : 'memory',
    clock: 'system',
    seed: 'soak',
  });
  const port = rt.addresses[0]!.port;
  const clients = buildClients(4096);
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  const loopTotal = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  loopTotal.enable();

  const pool: Conn[] = [];
  const replace = (c: Conn) => {
    const i = pool.indexOf(c);
    if (i >= 0 && !stopping) {
      counters.reconnects += 1;
      pool[i] = new Conn(port, replace);
    }
  };
  for (let i = 0; i < connections; i++) pool.push(new Conn(port, replace));

  let stopping = false;
  let next = 0;
  let backlog = 0;
  const churnRng = new SeededRandom('soak-churn');
  const started = performance.now();
  const durationMs = minutes * 60_000;
  let issued = 0;

  const issue = () => {
    const fresh = churn > 0 && churnRng.float() < churn;
    let best: Conn | null = null;
    if (!fresh) {
      for (const c of pool) {
        if (!c.dead && c.pending.length < depth && (!best || c.pending.length < best.pending.length))
          best = c;
      }
      if (!best) return false;
    }
    const client = retry.shift() ?? clients[next++ % clients.length]!;
    const verify = next % 64 === 0;
    (best ?? new Conn(port, () => {}, true)).send(client, verify);
    return true;
  };

  // Issue what is due: on a 10 ms tick, and whenever an answer frees a slot. A generator more than one
  // second behind does not try to catch up (it skips, and reports it): the rate stays steady.
  let skipped = 0;
  pump = () => {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    if (due - issued > rate) {
      skipped += due - issued - rate;
      issued = due - rate;
    }
    while (issued < due) {
      if (!issue()) break;
      issued += 1;
    }
    backlog = due - issued;
  };
  const tick = setInterval(() => pump?.(), 10);

  const gc = (globalThis as { gc?: () => void }).gc;
  const samples: Sample[] = [];
  let lastDone = 0;
  let lastT = started;
  const header = [
    't(s)',
    'rate/s',
    'rss MB',
    'heap MB',
    'lat p50',
    'lat p99',
    'loop p99',
    'loop max',
    'open',
    'behind',
  ];
  process.stdout.write(
    `soak: ${minutes} min at ${rate}/s, ${connections} connections × depth ${depth}, churn ${churn}, store ${storeKind}, ` +
      `${gc ? 'memory sampled after a forced GC' : 'memory sampled without GC (run node with --expose-gc to force one)'}\n`,
  );
  process.stdout.write(`${header.map((h) => h.padStart(9)).join('')}\n`);
  const sample = () => {
    if (gc) {
      // Memory after a full GC, so the heap trend is not the GC sawtooth. The loop-delay monitors are
      // paused around it: the forced pause is ours, not the host's.
      loop.disable();
      loopTotal.disable();
      gc();
      loop.enable();
      loopTotal.enable();
    }
    const now = performance.now();
    const m = process.memoryUsage();
    const s: Sample = {
      t: r2((now - started) / 1000),
      rssMB: mb(m.rss),
      heapMB: mb(m.heapUsed),
      externalMB: mb(m.external),
      rate: Math.round(((counters.done - lastDone) / (now - lastT)) * 1000),
      latencyP50Ms: ms(intervalLatency.percentile(50)),
      latencyP99Ms: ms(intervalLatency.percentile(99)),
      loopP50Ms: delayMs(loop.percentile(50)),
      loopP99Ms: delayMs(loop.percentile(99)),
      loopMaxMs: delayMs(loop.max),
      open: rt.server.openConnections,
      backlog,
    };
    samples.push(s);
    lastDone = counters.done;
    lastT = now;
    loop.reset();
    intervalLatency = createHistogram();
    process.stdout.write(
      `${[
        s.t,
        s.rate,
        s.rssMB,
        s.heapMB,
        s.latencyP50Ms,
        s.latencyP99Ms,
        s.loopP99Ms,
        s.loopMaxMs,
        s.open,
        s.backlog,
      ]
        .map((v) => String(v).padStart(9))
        .join('')}\n`,
    );
  };
  const sampler = setInterval(sample, sampleS * 1000);

  await new Promise<void>((resolve) => {
    const end = setTimeout(resolve, durationMs);
    process.once('SIGINT', () => {
      clearTimeout(end);
      resolve();
    });
  });
  stopping = true;
  pump = null;
  clearInterval(tick);
  clearInterval(sampler);
  sample();
  // Let the calls in flight finish, then stop.
  const drainUntil = Date.now() + 5000;
  while (pool.some((c) => c.pending.length > 0) && Date.now() < drainUntil)
    await new Promise((r) => setTimeout(r, 10));
  for (const c of pool) c.sock.destroy();
  const elapsedS = (performance.now() - started) / 1000;
  const historyRows = rt.store.historyCount();
  await rt.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });

  // Growth over the second half (the first half includes warm-up: JIT, pools filling, SQLite cache).
  const half = samples.filter((s) => s.t >= elapsedS / 2);
  const rssSlope = slope(half.map((s) => ({ x: s.t / 60, y: s.rssMB })));
  const heapSlope = slope(half.map((s) => ({ x: s.t / 60, y: s.heapMB })));
  const result = {
    minutes: r2(elapsedS / 60),
    targetRate: rate,
    achievedRate: Math.round(counters.done / elapsedS),
    activations: counters.done,
    errors: counters.errors,
    errorKinds: Object.fromEntries(errorKinds),
    churnedConnections: counters.churned,
    reconnects: counters.reconnects,
    requestLimitCloses: counters.limitCloses,
    skippedBehindSchedule: skipped,
    historyRows,
    rssStartMB: samples[0]?.rssMB ?? 0,
    rssEndMB: samples.at(-1)?.rssMB ?? 0,
    rssMaxMB: Math.max(...samples.map((s) => s.rssMB)),
    rssSlopeMBPerMin: r2(rssSlope),
    heapSlopeMBPerMin: r2(heapSlope),
    loopDelayP50Ms: delayMs(loopTotal.percentile(50)),
    loopDelayP99Ms: delayMs(loopTotal.percentile(99)),
    loopDelayMaxMs: delayMs(loopTotal.max),
    latencyP50Ms: ms(latency.percentile(50)),
    latencyP99Ms: ms(latency.percentile(99)),
    latencyMaxMs: ms(latency.max),
  };
  const rows: [string, string][] = [
    ['duration', `${result.minutes} min`],
    [
      'activations',
      `${result.activations.toLocaleString('en-US')} (${result.achievedRate}/s of ${rate}/s asked)`,
    ],
    ['errors', `${result.errors}${result.errors ? ` ${JSON.stringify(result.errorKinds)}` : ''}`],
    ['skipped (generator > 1 s behind)', `${result.skippedBehindSchedule.toLocaleString('en-US')}`],
    [
      'connections churned / closed at the request limit',
      `${result.churnedConnections.toLocaleString('en-US')} / ${result.requestLimitCloses}`,
    ],
    ['RSS start / end / max', `${result.rssStartMB} / ${result.rssEndMB} / ${result.rssMaxMB} MB`],
    ['RSS slope, 2nd half', `${result.rssSlopeMBPerMin} MB/min`],
    ['heap slope, 2nd half', `${result.heapSlopeMBPerMin} MB/min`],
    [
      'event-loop delay p50 / p99 / max',
      `${result.loopDelayP50Ms} / ${result.loopDelayP99Ms} / ${result.loopDelayMaxMs} ms`,
    ],
    [
      'latency p50 / p99 / max',
      `${result.latencyP50Ms} / ${result.latencyP99Ms} / ${result.latencyMaxMs} ms`,
    ],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`\n${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n`);
  const json = {
    bench: 'kmslab-soak',
    machine: machine(),
    options: { minutes, rate, connections, depth, churn, store: storeKind },
    result,
    samples,
  };
  process.stdout.write(`${JSON.stringify({ ...json, samples: undefined })}\n`);
  if (jsonOut) fs.writeFileSync(jsonOut, `${JSON.stringify(json, null, 2)}\n`);
  process.exitCode = counters.errors > 0 ? 1 : 0;
}

await main();
