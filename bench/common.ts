/** Shared bench plumbing: timed loops (wall and CPU), a machine description, the table printer. */
import { spawn } from 'node:child_process';
import inspector from 'node:inspector';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Sku } from '../src/catalog/products.js';
import type { KmsRequestBody, KmsVersion } from '../src/kms/messages.js';
import type { FileTime } from '../src/wire/filetime.js';
import { type Guid, NIL_GUID } from '../src/wire/guid.js';

export interface BenchRow {
  metric: string;
  value: number | string;
  unit: string;
  note?: string;
}

export interface BenchSection {
  name: string;
  rows: BenchRow[];
  data: Record<string, unknown>;
}

export interface LoopResult {
  iterations: number;
  wallMs: number;
  cpuMs: number;
  /** Wall µs per iteration. */
  us: number;
  /** CPU (user + system) µs per iteration: steadier than wall time on a shared machine. */
  cpuUs: number;
  perSecond: number;
}

const r2 = (x: number) => Math.round(x * 100) / 100;

/** A bench child host: close `rt` on SIGTERM/SIGINT, then exit (1 if closing failed). */
export function closeOnSignal(rt: { close(): Promise<unknown> }): void {
  const stop = () => {
    rt.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/**
 * Runs `fn(i)` for at least `ms` milliseconds (after `warmupMs` of warm-up), checking the clock every
 * `batch` calls.
 */
export function timeLoop(fn: (i: number) => void, ms = 500, warmupMs = 250, batch = 64): LoopResult {
  let i = 0;
  const w0 = performance.now();
  while (performance.now() - w0 < warmupMs) for (let j = 0; j < batch; j++) fn(i++);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  let t = t0;
  while (t - t0 < ms) {
    for (let j = 0; j < batch; j++) fn(i++);
    n += batch;
    t = performance.now();
  }
  const c = process.cpuUsage(c0);
  const wallMs = t - t0;
  const cpuMs = (c.user + c.system) / 1000;
  return {
    iterations: n,
    wallMs: r2(wallMs),
    cpuMs: r2(cpuMs),
    us: r2((wallMs * 1000) / n),
    cpuUs: r2((cpuMs * 1000) / n),
    perSecond: Math.round((n / wallMs) * 1000),
  };
}

export function machine() {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGB: Math.round(os.totalmem() / 1e8) / 10,
    loadAverage: os.loadavg().map((x) => r2(x)),
  };
}

export function rssMB(): number {
  return Math.round(process.memoryUsage().rss / 1e5) / 10;
}

export function printTable(sections: BenchSection[], out: NodeJS.WritableStream = process.stdout): void {
  const rows: string[][] = [['bench', 'metric', 'value', 'unit', 'note']];
  for (const s of sections) {
    for (const r of s.rows) {
      const v =
        typeof r.value === 'number' ? r.value.toLocaleString('en-US', { maximumFractionDigits: 2 }) : r.value;
      rows.push([s.name, r.metric, v, r.unit, r.note ?? '']);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  out.write(`${line(rows[0]!)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of rows.slice(1)) out.write(`${line(r)}\n`);
}

/** Minimal flags: `--name value`, `--flag`, positional words. */
export function parseArgs(argv: string[]): { words: string[]; flags: Record<string, string | true> } {
  const words: string[] = [];
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags[a.slice(2, eq)] = a.slice(eq + 1);
      else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) flags[a.slice(2)] = argv[++i]!;
      else flags[a.slice(2)] = true;
    } else words.push(a);
  }
  return { words, flags };
}

export function num(v: string | true | undefined, d: number): number {
  if (v === undefined || v === true) return d;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`not a positive number: ${v}`);
  return n;
}

/** True when the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === url;
}

/** Runs one bench section as a script: table, then one JSON line. */
export async function runStandalone(name: string, run: () => Promise<BenchSection>): Promise<void> {
  const s = await run();
  printTable([s]);
  process.stdout.write(
    `${JSON.stringify({ bench: 'kmslab', machine: machine(), results: { [name]: s.data } })}\n`,
  );
}

/** A genuine-looking request body for `sku` (license status 2, 30 days left, N from the caller). */
export function benchRequestBody(
  sku: Sku,
  version: KmsVersion,
  cmid: Guid,
  clientTime: FileTime,
  workstation: string,
  requiredClientCount = 25,
): KmsRequestBody {
  return {
    minorVersion: 0,
    majorVersion: version,
    vmInfo: 0,
    licenseStatus: 2,
    bindingExpiration: 43_200,
    applicationId: sku.applicationId,
    skuId: sku.id,
    kmsId: sku.kmsId,
    cmid,
    requiredClientCount,
    clientTime,
    previousCmid: NIL_GUID,
    workstation,
  };
}

/** A loopback port the kernel considers free right now (the host binds it a moment later). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

interface SampleNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SampleNode[];
}

/**
 * JS heap allocated in this process while `work` runs, by V8's sampling heap profiler counting the
 * objects the young and old collections already freed too: the total and the bytes by function
 * (`name file:line`, paths from src/, dist/ or node_modules/).
 */
export async function sampleAllocations(
  work: () => Promise<void> | void,
  samplingInterval = 512,
): Promise<{ total: number; byFunction: Map<string, number> }> {
  const session = new inspector.Session();
  session.connect();
  const post = <T>(method: string, params: object = {}): Promise<T> =>
    new Promise((res, rej) => session.post(method, params, (e, r) => (e ? rej(e) : res(r as T))));
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', {
    samplingInterval,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  await work();
  const { profile } = await post<{ profile: { head: SampleNode } }>('HeapProfiler.stopSampling');
  session.disconnect();
  const byFunction = new Map<string, number>();
  let total = 0;
  const walk = (n: SampleNode): void => {
    const f = n.callFrame;
    const where = f.url.replace(/.*\/(src|dist|node_modules)\//, '$1/').replace(/^file:\/\/.*\//, '');
    // A line number where it means one: tsx's on-the-fly transform of a .ts file puts it all on line 1.
    const line = where && !where.endsWith('.ts') ? `:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}${line}`;
    total += n.selfSize;
    byFunction.set(key, (byFunction.get(key) ?? 0) + n.selfSize);
    for (const c of n.children) walk(c);
  };
  walk(profile.head);
  return { total, byFunction };
}

/**
 * The kmsload arguments of issue 12's two loads against a loopback port: `conv` is c=64 new
 * connections, `keep` c=8 keep-alive; the V6 vector given, `--close rst`, JSON out.
 */
export function kmsloadArgs(
  tools: string,
  vector: string,
  port: number,
  seconds: number,
  phase: 'conv' | 'keep',
): string[] {
  return [
    path.join(tools, 'kmsload.mjs'),
    '--vector',
    vector,
    '--port',
    String(port),
    '--seconds',
    String(seconds),
    '--count',
    '1000000',
    '--close',
    'rst',
    '--loose-length',
    '--json',
    ...(phase === 'conv' ? ['--concurrency', '64'] : ['--concurrency', '8', '--keepalive']),
  ];
}

/** kmsload's JSON result line (the fields the benches read). */
export interface KmsloadResult {
  per_s: number;
  ok: number;
  failed: number;
  latency_ms: { p99: number };
}

/**
 * Runs kmsload with `args` (kmsloadArgs) and resolves with its result. kmsload lingers a few seconds
 * after printing (its connect timers), so its JSON line ends the run: `atResult` gets its pid then,
 * before it is stopped (by that pid), for a reading of its CPU.
 */
export function runKmsload(args: string[], atResult?: (pid: number) => void): Promise<KmsloadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('}\n');
      if (nl < 0) return;
      atResult?.(child.pid!);
      child.kill('SIGTERM');
      resolve(JSON.parse(out.slice(out.indexOf('{'), nl + 1)) as KmsloadResult);
    });
    child.on('exit', () => reject(new Error(`kmsload ended without a result: ${out}`)));
  });
}
