/**
 * `npm run bench -- flood`: what hostile or careless clients cost a kmslab host, and whether a real
 * client is served meanwhile (issue 11's done-when). Each phase starts a fresh host with default
 * settings as a child process (`kmslab serve` from dist/: run `npm run build` first; a fresh store file
 * in a temp directory, an ephemeral loopback port), samples its RSS from /proc every 200 ms and counts
 * its log lines:
 *
 * - pipelined: 8 clients write pipelined requests as fast as they can and never read, for --seconds;
 *   a client the host drops reconnects at once;
 * - slow-readers: the same with clients that read 1 byte a second;
 * - reference: the same with clients that read every answer, as fast as the host answers: what the load
 *   itself moves RSS by (a young V8 heap grown to its size under load, SQLite's page cache), measured in
 *   the same run so that the two above can be read against it;
 * - idle: --connections idle connections (default 10,000) are opened and held; a real client is then
 *   answered; the host's idle timeout (default 30 s; --idle-timeout MS to shorten) must close them all;
 * - reconnect: one client holds the cap + 500 connections and reopens each one the host closes, as
 *   fast as the host accepts, for --seconds; a real client tries every 500 ms.
 *
 * The real client is the client library's `activate` (one connection, bind, one V6 request) with a
 * 5 s timeout. Loopback only; every socket and the child are closed at the end of each phase (the child
 * by its PID).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { activate } from '../src/client/client.js';
import { DEFAULT_LIMITS } from '../src/server/limits.js';
import type { BenchRow, BenchSection } from './common.js';
import { buildConversations, procRssMB } from './load.js';

export interface FloodBenchOptions {
  /** Length of the pipelined, slow-reader and reconnect phases (default 10). */
  seconds?: number;
  /** Idle connections of the idle phase (default 10,000, scaled down to the descriptor limit). */
  connections?: number;
  /** The idle phase host's --idle-timeout in ms (default: the host's default). */
  idleTimeoutMs?: number;
  phases?: Phase[];
}

const PHASES = ['pipelined', 'slow-readers', 'reference', 'idle', 'reconnect'] as const;
type Phase = (typeof PHASES)[number];

const HOST = '127.0.0.1';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const r1 = (x: number) => Math.round(x * 10) / 10;

function softFdLimit(): number {
  const out = spawnSync('sh', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }).stdout.trim();
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out) || 1024;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'dist/cli/bin.js');

/** The built CLI must be as new as the edge's sources (the bench measures dist/, as `npm start` runs). */
function checkBuild(): void {
  if (!fs.existsSync(BIN)) throw new Error('flood: dist/ is missing: run `npm run build` first');
  const built = fs.statSync(path.join(ROOT, 'dist/server/tcp.js')).mtimeMs;
  const dir = path.join(ROOT, 'src/server');
  for (const f of fs.readdirSync(dir)) {
    if (fs.statSync(path.join(dir, f)).mtimeMs > built) {
      throw new Error(`flood: src/server/${f} is newer than dist/: run \`npm run build\` first`);
    }
  }
}

/**
 * `kmslab serve` as a child process with default settings but a fresh store file in a temp directory
 * and an ephemeral loopback port; its RSS sampled every 200 ms, its log lines counted.
 */
class ChildHost {
  private timer: NodeJS.Timeout | null = null;
  baseline = 0;
  peak = 0;
  logLines = 0;
  logBytes = 0;
  /** Events by log message since `sample()`, counting the lines the rate limit left out. */
  readonly events = new Map<string, number>();
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
  ) {}

  /** `args`: more serve flags. `minFds`: raise the child's soft descriptor limit to this (sh ulimit). */
  static async start(args: string[] = [], minFds = 0): Promise<ChildHost> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kmslab-flood-'));
    const argv = [BIN, 'serve', '--listen', `${HOST}:0`, '--store', path.join(dir, 'kms.db'), ...args];
    const raise = `[ "$(ulimit -Sn)" -lt ${minFds} ] && ulimit -Sn ${minFds}; exec "$0" "$@"`;
    const child = spawn('sh', ['-c', raise, process.execPath, ...argv], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const rl = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((res, rej) => {
      rl.once('line', res);
      child.once('exit', (code) => rej(new Error(`kmslab serve exited with ${code}`)));
    });
    const listen = (JSON.parse(first) as { listen: string[] }).listen[0]!;
    const host = new ChildHost(child, Number(listen.slice(listen.lastIndexOf(':') + 1)), dir);
    rl.on('line', (l) => {
      host.logLines += 1;
      host.logBytes += l.length + 1;
      try {
        // A rate-limited line stands for itself and the `suppressed` ones before it.
        const { msg, suppressed } = JSON.parse(l) as { msg: string; suppressed?: number };
        host.events.set(msg, (host.events.get(msg) ?? 0) + 1 + (suppressed ?? 0));
      } catch {
        // not a JSON line
      }
    });
    return host;
  }

  get rss(): number {
    return procRssMB(this.child.pid!) ?? 0;
  }

  /** Sets the baseline (after a warm-up activation) and starts tracking the peak. */
  async sample(): Promise<void> {
    await realClient(this.port);
    await sleep(200);
    this.baseline = this.rss;
    this.peak = this.baseline;
    this.logLines = 0;
    this.logBytes = 0;
    this.events.clear();
    this.timer = setInterval(() => {
      this.peak = Math.max(this.peak, this.rss);
    }, 200);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const exited = new Promise<void>((r) => {
      if (this.child.exitCode !== null) r();
      else this.child.once('exit', () => r());
    });
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The host's logged events as `event: <message>` entries (counts), for the JSON. */
/** The host's log volume and its count of each event, for a phase's JSON. */
function logFigures(host: ChildHost): Record<string, number> {
  const out: Record<string, number> = { logLines: host.logLines, logKB: Math.round(host.logBytes / 1024) };
  for (const [msg, n] of host.events) out[`event: ${msg}`] = n;
  return out;
}

/** The host's RSS before and at peak during a phase. */
function rssFigures(host: ChildHost): { baselineMB: number; peakMB: number; rssDeltaMB: number } {
  return { baselineMB: host.baseline, peakMB: host.peak, rssDeltaMB: r1(host.peak - host.baseline) };
}

let realSeq = 0;
/** One activation by the client library: whether it was answered and activated, and its latency. */
async function realClient(port: number): Promise<{ ok: boolean; ms: number }> {
  const t = performance.now();
  realSeq += 1;
  try {
    const [r] = await activate({
      host: HOST,
      port,
      product: 'Windows 10/11 Enterprise',
      requiredCount: 1,
      workstation: `REAL-${realSeq}`,
      timeoutMs: 5000,
    });
    return { ok: r?.activated === true, ms: performance.now() - t };
  } catch {
    return { ok: false, ms: performance.now() - t };
  }
}

/** A real client every `everyMs` until `stop()`: tries, activations and the slowest answer. */
function realClients(port: number, everyMs: number) {
  const s = { tries: 0, ok: 0, maxMs: 0 };
  let running = true;
  const loop = (async () => {
    while (running) {
      const next = sleep(everyMs);
      const r = await realClient(port);
      s.tries += 1;
      if (r.ok) {
        s.ok += 1;
        s.maxMs = Math.max(s.maxMs, r.ms);
      }
      await next;
    }
  })();
  return {
    stats: s,
    stop: async () => {
      running = false;
      await loop;
      return s;
    },
  };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
  });
}

/** Until the socket drains, closes, or `stopAt`. */
function drained(s: net.Socket, stopAt: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    const t = setTimeout(done, Math.max(0, stopAt - Date.now()));
    s.once('drain', done);
    s.once('close', done);
  });
}

/**
 * One client that writes bind + pipelined requests as fast as the socket takes them and never reads
 * (or reads 1 byte a second), until `stopAt`; reconnects when the host drops it.
 */
async function pipelinedWriter(port: number, stopAt: number, reads: Reads) {
  const conv = buildConversations(1, Date.now())[0]!;
  const batch = Buffer.concat(Array.from({ length: 100 }, () => conv.request));
  const out = { connections: 0, dropped: 0, sentMB: 0 };
  while (Date.now() < stopAt) {
    let s: net.Socket;
    try {
      s = await connect(port);
    } catch {
      await sleep(50);
      continue;
    }
    out.connections += 1;
    if (reads === 'all') s.on('data', () => {});
    else s.pause();
    let closed = false;
    s.once('close', () => {
      closed = true;
    });
    const reader = reads === 'byte-a-second' ? setInterval(() => s.read(1), 1000) : null;
    for (const b of conv.setup) s.write(b); // bind, then alter_context for NDR32 on context 0
    while (!closed && Date.now() < stopAt) {
      const taken = s.write(batch);
      out.sentMB += batch.length / 2 ** 20;
      if (taken) await new Promise((r) => setImmediate(r));
      else await drained(s, stopAt);
    }
    if (reader) clearInterval(reader);
    if (closed) out.dropped += 1;
    s.destroy();
  }
  return out;
}

/** What a pipelining client reads of its answers: nothing, 1 byte a second, or all (the reference). */
type Reads = 'none' | 'byte-a-second' | 'all';

async function pipelinedPhase(seconds: number, reads: Reads): Promise<Record<string, number>> {
  const host = await ChildHost.start();
  try {
    await host.sample();
    const real = realClients(host.port, 1000);
    const stopAt = Date.now() + seconds * 1000;
    const writers = await Promise.all(
      Array.from({ length: 8 }, () => pipelinedWriter(host.port, stopAt, reads)),
    );
    const r = await real.stop();
    return {
      clients: 8,
      seconds,
      ...rssFigures(host),
      connections: writers.reduce((a, w) => a + w.connections, 0),
      droppedByHost: writers.reduce((a, w) => a + w.dropped, 0),
      sentMB: r1(writers.reduce((a, w) => a + w.sentMB, 0)),
      realTries: r.tries,
      realActivated: r.ok,
      realMaxMs: Math.round(r.maxMs),
      ...logFigures(host),
    };
  } finally {
    await host.stop();
  }
}

async function idlePhase(n: number, idleTimeoutMs: number): Promise<Record<string, number>> {
  const host = await ChildHost.start([`--idle-timeout=${idleTimeoutMs}ms`], n + 1000);
  const clients: net.Socket[] = [];
  try {
    await host.sample();
    let closedByHost = 0;
    const t0 = Date.now();
    for (let i = 0; i < n; i += 500) {
      const batch = await Promise.all(Array.from({ length: Math.min(500, n - i) }, () => connect(host.port)));
      for (const s of batch) s.once('close', () => (closedByHost += 1));
      clients.push(...batch);
    }
    const openMs = Date.now() - t0;
    await sleep(500);
    const heldMB = host.rss;
    const real = await realClient(host.port);
    const afterRealMB = host.rss;
    // Every connection was opened by openMs: all must be closed by the idle timeout after it.
    const deadline = t0 + openMs + idleTimeoutMs + 10_000;
    while (closedByHost < n && Date.now() < deadline) await sleep(100);
    const goneAfterMs = Date.now() - t0;
    return {
      connections: n,
      openMs,
      baselineMB: host.baseline,
      heldMB,
      peakMB: host.peak,
      realActivated: real.ok ? 1 : 0,
      realMs: Math.round(real.ms),
      afterRealMB,
      idleTimeoutMs,
      closedByHost,
      allClosedAfterMs: closedByHost === n ? goneAfterMs : -1,
      rssAfterCloseMB: host.rss,
      ...logFigures(host),
    };
  } finally {
    for (const s of clients) s.destroy();
    await host.stop();
  }
}

async function reconnectPhase(seconds: number, hold: number): Promise<Record<string, number>> {
  const host = await ChildHost.start([], hold + 1000);
  const open = new Set<net.Socket>();
  let opened = 0;
  let closedByHost = 0;
  let running = true;
  // One client: `hold` connections at once, each reopened the moment the host closes it.
  const keep = async (): Promise<void> => {
    while (running) {
      let s: net.Socket;
      try {
        s = await connect(host.port);
      } catch {
        await sleep(20);
        continue;
      }
      opened += 1;
      open.add(s);
      await new Promise<void>((r) => s.once('close', () => r()));
      open.delete(s);
      if (running) closedByHost += 1;
    }
  };
  try {
    await host.sample();
    const loops: Promise<void>[] = [];
    for (let i = 0; i < hold; i += 500) {
      for (let j = i; j < Math.min(hold, i + 500); j++) loops.push(keep());
      await sleep(50);
    }
    const real = realClients(host.port, 500);
    await sleep(seconds * 1000);
    const r = await real.stop();
    running = false;
    for (const s of open) s.destroy();
    await Promise.all(loops);
    return {
      seconds,
      held: hold,
      opened,
      closedByHost,
      ...rssFigures(host),
      realTries: r.tries,
      realActivated: r.ok,
      realMaxMs: Math.round(r.maxMs),
      ...logFigures(host),
    };
  } finally {
    running = false;
    for (const s of open) s.destroy();
    await host.stop();
  }
}

export async function runFloodBench(opts: FloodBenchOptions = {}): Promise<BenchSection> {
  checkBuild();
  const seconds = opts.seconds ?? 10;
  const phases = opts.phases ?? [...PHASES];
  // This process holds the idle connections (and the reconnect phase's cap + 500) itself.
  const fds = softFdLimit();
  const cap = DEFAULT_LIMITS.maxConnections;
  let n = opts.connections ?? 10_000;
  if (fds < n + 500) {
    n = Math.max(100, fds - 500);
    process.stderr.write(`flood: ulimit -n is ${fds}: holding ${n} idle connections\n`);
  }
  const hold = Math.min(cap + 500, Math.max(100, fds - 500));
  const data: Record<string, Record<string, number>> = {};
  const rows: BenchRow[] = [];
  const log = (s: string) => process.stderr.write(`  flood ${s}\n`);
  for (const p of phases) {
    log(`${p} ...`);
    if (p === 'pipelined' || p === 'slow-readers' || p === 'reference') {
      const reads = p === 'pipelined' ? 'none' : p === 'slow-readers' ? 'byte-a-second' : 'all';
      const d = await pipelinedPhase(seconds, reads);
      data[p] = d;
      rows.push(
        {
          metric: `${p}: host RSS delta (8 clients, ${seconds} s)`,
          value: d.rssDeltaMB!,
          unit: 'MB',
          note: `${p === 'reference' ? 'clients that read every answer: the cost of the load itself' : 'target < 32'}; ${d.baselineMB} → peak ${d.peakMB}; ${d.droppedByHost} of ${d.connections} connections dropped by the host; ${d.logLines} log lines`,
        },
        {
          metric: `${p}: real client activated`,
          value: `${d.realActivated}/${d.realTries}`,
          unit: 'tries',
          note: `slowest ${d.realMaxMs} ms`,
        },
      );
    } else if (p === 'idle') {
      const d = await idlePhase(n, opts.idleTimeoutMs ?? DEFAULT_LIMITS.idleTimeoutMs);
      data[p] = d;
      rows.push(
        {
          metric: `idle: host RSS with ${n} idle connections`,
          value: d.heldMB!,
          unit: 'MB',
          note: `target < 100; baseline ${d.baselineMB}, peak ${d.peakMB}; opened in ${d.openMs} ms`,
        },
        {
          metric: 'idle: real client activated among them',
          value: d.realActivated!,
          unit: 'of 1',
          note: `${d.realMs} ms; ${d.logLines} log lines in the phase`,
        },
        {
          metric: `idle: closed by the host (idle timeout ${d.idleTimeoutMs} ms)`,
          value: d.closedByHost!,
          unit: `of ${n}`,
          note:
            d.allClosedAfterMs! >= 0 ? `all gone ${d.allClosedAfterMs} ms after the first opened` : 'not all',
        },
      );
    } else {
      const d = await reconnectPhase(seconds, hold);
      data[p] = d;
      rows.push(
        {
          metric: `reconnect: real client activated (1 client holding ${hold}, reopening)`,
          value: `${d.realActivated}/${d.realTries}`,
          unit: 'tries',
          note: `slowest ${d.realMaxMs} ms; ${d.opened} flood connections opened, ${d.closedByHost} closed by the host`,
        },
        {
          metric: 'reconnect: host RSS delta',
          value: d.rssDeltaMB!,
          unit: 'MB',
          note: `${d.baselineMB} → peak ${d.peakMB}; ${d.logLines} log lines (${d.logKB} KiB)`,
        },
      );
    }
  }
  return { name: 'flood', rows, data };
}

export function floodPhases(v: string | true | undefined): Phase[] | undefined {
  if (typeof v !== 'string') return undefined;
  const list = v.split(',');
  for (const p of list) {
    if (!(PHASES as readonly string[]).includes(p))
      throw new Error(`flood: unknown phase ${p} (${PHASES.join(', ')})`);
  }
  return list as Phase[];
}
