/**
 * `npx tsx bench/alloc-socket.ts [--phase conv|keep|open] [--seconds N] [--top N] [--tools DIR] [--baseline DIR]
 *  [--connections N]`
 *
 * JS heap allocated per operation over real loopback sockets, kmslab beside the no-op host
 * (`../shared/tools/noop-host.mjs`, Node's floor), each in its own process: the host runs in-process
 * under V8's sampling heap profiler (counting objects the young and old collections already freed), and
 * the neutral load tool kmsload drives it from a child process (c=64 new connections with `--close rst`,
 * or c=8 keep-alive). Prints bytes per operation for both hosts and kmslab's top allocators by function.
 *
 * Allocation per operation is a machine-independent figure (unlike CPU time on a shared VM), and it is
 * what sets the garbage collector's share of a conversation: `serve` keeps V8's young generation at its
 * start size to stay under 80 MB (src/cli/bin.ts), so every allocated byte brings the next scavenge
 * closer, and objects of connections still open at that moment are copied and promoted.
 * kmslab runs from `dist/` (`npm run build` first), memory store, warn-level log. `--baseline DIR` also
 * measures another built checkout's `dist/` in the same run (a before/after side by side). Loopback only.
 *
 * `--phase open` measures what the host keeps instead: the JS heap retained per open connection (after a
 * full collection) once a client process has run the whole captured conversation on each of
 * `--connections` (default 2000) connections and holds them open. That is what each scavenge copies while
 * a load's connections are open.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { freePort, kmsloadArgs, num, parseArgs, runKmsload, sampleAllocations } from './common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const VECTOR = path.join(ROOT, 'fixtures/vectors/vlmcsd/v6-win10.json');
const { flags } = parseArgs(process.argv.slice(2));
const phase = flags['phase'] === 'keep' ? 'keep' : flags['phase'] === 'open' ? 'open' : 'conv';
const connections = num(flags['connections'], 2000);
const seconds = num(flags['seconds'], 3);
const top = num(flags['top'], 25);
const baseline = typeof flags['baseline'] === 'string' ? path.resolve(flags['baseline']) : undefined;
const tools = path.resolve(
  typeof flags['tools'] === 'string' ? flags['tools'] : path.join(ROOT, '../shared/tools'),
);

/** Starts the host in this process; resolves with its port. */
async function startHost(host: 'kmslab' | 'noop' | 'baseline'): Promise<number> {
  if (host === 'noop') {
    // The shared tool itself, unchanged: it reads its vector and port from argv and listens.
    const port = await freePort();
    process.argv = [process.execPath, path.join(tools, 'noop-host.mjs'), VECTOR, String(port)];
    await import(pathToFileURL(path.join(tools, 'noop-host.mjs')).href);
    return port;
  }
  const { startHostRuntime } = (await import(
    pathToFileURL(path.join(host === 'baseline' ? baseline! : ROOT, 'dist/server/runtime.js')).href
  )) as {
    startHostRuntime: (o: object) => Promise<{ addresses: { port: number }[] }>;
  };
  const { default: pino } = await import('pino');
  const rt = await startHostRuntime({
    listen: [{ host: '127.0.0.1', port: 0 }],
    store: 'memory',
    logger: pino({ level: 'warn' }),
  });
  return rt.addresses[0]!.port;
}

/** One kmsload run; resolves with the operations it completed. */
async function load(port: number, secs: number): Promise<number> {
  const r = await runKmsload(kmsloadArgs(tools, VECTOR, port, secs, phase === 'keep' ? 'keep' : 'conv'));
  if (r.failed > 0) throw new Error(`${r.failed} operations failed`);
  return r.ok;
}

/**
 * The client of `--phase open`, run in its own process so its sockets are not in the host's heap: opens
 * N connections to PORT, runs the vector's client PDUs on each (each after the previous answer), prints
 * one line when all are done, and holds them until its stdin closes.
 */
const HOLD_CLIENT = `
const net = require('node:net'), fs = require('node:fs');
const [vector, port, n] = process.argv.slice(1);
const c2s = JSON.parse(fs.readFileSync(vector, 'utf8')).pdus
  .filter((p) => p.dir === 'c2s' && p.conn === 0).map((p) => Buffer.from(p.hex, 'hex'));
const one = () => new Promise((done, fail) => {
  let k = 0;
  const s = net.connect(Number(port), '127.0.0.1', () => s.write(c2s[k++]));
  s.on('data', () => (k < c2s.length ? s.write(c2s[k++]) : done(s)));
  s.on('error', fail);
});
Promise.all(Array.from({ length: Number(n) }, one)).then(() => {
  process.stdout.write('held\\n');
  process.stdin.resume().on('end', () => process.exit(0));
}, (e) => { console.error(e); process.exit(1); });
`;

/** Opens and holds `n` conversations from a child process; resolves with a function that ends them. */
async function hold(port: number, n: number): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, ['-e', HOLD_CLIENT, VECTOR, String(port), String(n)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => d.includes('held') && resolve());
    child.once('exit', (code) => reject(new Error(`the holding client exited (${code})`)));
  });
  return async () => {
    child.stdin.end();
    await exited;
  };
}

/** `--phase open`: JS heap retained per open connection after its conversation. */
async function measureOpen(host: 'kmslab' | 'noop' | 'baseline', port: number): Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const settle = async () => {
    await new Promise((r) => setTimeout(r, 300)); // the host's last writes and closes
    gc();
    gc();
  };
  await (await hold(port, 200))(); // warm-up: compiled code, the listener's own lazy state
  await settle();
  const before = process.memoryUsage().heapUsed;
  const release = await hold(port, connections);
  await settle();
  const after = process.memoryUsage().heapUsed;
  await release();
  const bytesPerOp = Math.round((after - before) / connections);
  process.stdout.write(`${JSON.stringify({ host, phase, ops: connections, bytesPerOp, top: [] })}\n`);
  process.exit(0);
}

/** Child mode: measure one host, print one JSON line. */
async function measure(host: 'kmslab' | 'noop' | 'baseline'): Promise<void> {
  const port = await startHost(host);
  if (phase === 'open') return measureOpen(host, port);
  await load(port, 1); // warm-up: compiled code, steady heap
  let ops = 0;
  const { total, byFunction } = await sampleAllocations(async () => {
    ops = await load(port, seconds);
  });
  const perOp = (b: number) => Math.round(b / ops);
  const topList = [...byFunction]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => [k, perOp(v)]);
  process.stdout.write(`${JSON.stringify({ host, phase, ops, bytesPerOp: perOp(total), top: topList })}\n`);
  process.exit(0);
}

if (typeof flags['only'] === 'string') {
  const only = flags['only'];
  await measure(only === 'noop' || only === 'baseline' ? only : 'kmslab');
} else {
  const hosts = ['noop', 'kmslab', ...(baseline ? (['baseline'] as const) : [])] as const;
  const results = hosts.map((host) => {
    const r = spawnSync(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), '--only', host],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: (seconds + 30) * 1000,
      },
    );
    if (r.status !== 0) throw new Error(`alloc-socket: the ${host} run failed`);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      host: string;
      ops: number;
      bytesPerOp: number;
      top: [string, number][];
    };
  });
  const [noop, kms, base] = results as [(typeof results)[0], (typeof results)[0], (typeof results)[0]?];
  if (phase === 'open')
    console.log(
      `JS heap retained per open connection after its whole conversation (${connections} connections held):`,
    );
  else {
    const op = phase === 'conv' ? 'conversation (c=64 new connections)' : 'keep-alive request (c=8)';
    console.log(`JS heap allocated per ${op}, sampled over ${seconds} s of kmsload:`);
  }
  console.log(`  no-op host  ${String(noop.bytesPerOp).padStart(7)} B   (${noop.ops} ops)`);
  console.log(`  kmslab      ${String(kms.bytesPerOp).padStart(7)} B   (${kms.ops} ops)`);
  if (base)
    console.log(`  baseline    ${String(base.bytesPerOp).padStart(7)} B   (${base.ops} ops, ${baseline})`);
  if (kms.top.length > 0) console.log(`kmslab's top allocators (B per op):`);
  for (const [k, v] of kms.top) console.log(`  ${String(v).padStart(6)}  ${k}`);
  console.log(
    JSON.stringify({
      bench: 'alloc-socket',
      phase,
      seconds,
      noop,
      kmslab: kms,
      ...(base ? { baseline: base } : {}),
    }),
  );
}
