/**
 * `npx tsx bench/alloc-socket.ts [--phase conv|keep] [--seconds N] [--top N] [--tools DIR] [--baseline DIR]`
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
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, kmsloadArgs, num, parseArgs, runKmsload, sampleAllocations } from './common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const VECTOR = path.join(ROOT, 'fixtures/vectors/vlmcsd/v6-win10.json');
const { flags } = parseArgs(process.argv.slice(2));
const phase = flags['phase'] === 'keep' ? 'keep' : 'conv';
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
  const r = await runKmsload(kmsloadArgs(tools, VECTOR, port, secs, phase));
  if (r.failed > 0) throw new Error(`${r.failed} operations failed`);
  return r.ok;
}

/** Child mode: measure one host, print one JSON line. */
async function measure(host: 'kmslab' | 'noop' | 'baseline'): Promise<void> {
  const port = await startHost(host);
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
  const op = phase === 'conv' ? 'conversation (c=64 new connections)' : 'keep-alive request (c=8)';
  console.log(`JS heap allocated per ${op}, sampled over ${seconds} s of kmsload:`);
  console.log(`  no-op host  ${String(noop.bytesPerOp).padStart(7)} B   (${noop.ops} ops)`);
  console.log(`  kmslab      ${String(kms.bytesPerOp).padStart(7)} B   (${kms.ops} ops)`);
  if (base)
    console.log(`  baseline    ${String(base.bytesPerOp).padStart(7)} B   (${base.ops} ops, ${baseline})`);
  console.log(`kmslab's top allocators (B per op):`);
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
