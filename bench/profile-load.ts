/**
 * `npx tsx bench/profile-load.ts [--store memory|PATH] [--seconds N] [--runs N] [--cpu-prof DIR]
 *  [--phase conv|keep|both] [--port N] [--server-args "..."] [--node-args "..."] [--wait-quiet] [--server-cmd "node x.js"] [--root DIR]`
 *
 * The issue-7 measurement, scripted: starts `node dist/cli/bin.js serve` (build first), runs the
 * neutral load tool ../shared/tools/kmsload.mjs (beside the project; KMSLOAD=PATH elsewhere) against it (new connections at concurrency 64 with
 * `--close rst`, then keep-alive at concurrency 8), samples the server's RSS from /proc every 100 ms
 * (peak reported) and prints one JSON line per phase. --root runs another checkout's build (A/B). Loopback only. With --cpu-prof the server runs
 * under `node --cpu-prof` and writes its profile into DIR on exit (read it with profile-summary.ts).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const LOAD = process.env.KMSLOAD ?? path.resolve(ROOT, '../shared/tools/kmsload.mjs');
const VECTOR = path.join(ROOT, 'fixtures/vectors/vlmcsd/v6-win10.json');

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
}

const store = arg('store', 'memory');
const seconds = arg('seconds', '10');
const runs = Number(arg('runs', '1'));
const port = Number(arg('port', '17750'));
const phase = arg('phase', 'both');
const cpuProf = arg('cpu-prof', '');
const extra = arg('server-args', '').split(' ').filter(Boolean);

function rssKb(pid: number): number {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** This pid's utime+stime in jiffies (0 once it is gone). */
function cpu(pid?: number): number {
  if (pid === undefined) return machine().busy;
  try {
    const f = fs
      .readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Machine-wide jiffies from /proc/stat: busy (all but idle and iowait), softirq, idle. */
function machine(): { busy: number; softirq: number; idle: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, softirq: f[6]! + f[5]!, idle: f[3]! + f[4]! };
}

async function runLoad(args: string[], serverPid: number): Promise<Record<string, unknown>> {
  const m0 = machine();
  const s0 = cpu(serverPid);
  // The load tool runs under bash, which prints its children's CPU time (cutime + cstime) when done.
  const cmd = [LOAD, '--vector', VECTOR, '--port', String(port), '--json', ...args]
    .map((a) => `'${a}'`)
    .join(' ');
  const child = spawn(
    'bash',
    ['-c', `'${process.execPath}' ${cmd}; echo "CHILDCPU $(cut -d' ' -f16,17 /proc/$$/stat)"`],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  await new Promise((r) => child.on('exit', r));
  const m1 = machine();
  const hz = 100;
  const lines = out.trim().split('\n');
  // kmsload lingers ~5 s after its run (uncleared connect timers), idle: rates use its own elapsed time.
  const secs = Number(
    (JSON.parse(lines.filter((l) => l.startsWith('{')).at(-1)!) as { elapsed_s: number }).elapsed_s,
  );
  const cc = lines.find((l) => l.startsWith('CHILDCPU'))!.split(' ');
  const load = (Number(cc[1]) + Number(cc[2])) / hz / secs;
  const server = (cpu(serverPid) - s0) / hz / secs;
  const busy = (m1.busy - m0.busy) / hz / secs;
  const res = JSON.parse(lines.filter((l) => l.startsWith('{')).at(-1)!) as Record<string, unknown>;
  res.cpu = {
    server: r2(server),
    load: r2(load),
    softirq: r2((m1.softirq - m0.softirq) / hz / secs),
    others: r2(busy - server - load - (m1.softirq - m0.softirq) / hz / secs),
    idle: r2(os.cpus().length - busy),
  };
  // CPU microseconds per answered conversation / request: independent of what else the machine runs.
  const ok = Number(res.ok) || 1;
  res.usPerOp = {
    server: Math.round((server * secs * 1e6) / ok),
    load: Math.round((load * secs * 1e6) / ok),
    softirq: Math.round((((m1.softirq - m0.softirq) / hz) * 1e6) / ok),
  };
  return res;
}

/** Waits (up to 10 min) until the machine has been nearly idle for 2 s, so others' runs do not skew ours. */
async function waitQuiet(): Promise<void> {
  const t0 = Date.now();
  let quiet = 0;
  while (Date.now() - t0 < 600_000) {
    const a = cpu();
    await new Promise((r) => setTimeout(r, 500));
    const busy = (cpu() - a) / 100 / 0.5;
    quiet = busy < 0.25 ? quiet + 1 : 0;
    if (quiet >= 4) return;
  }
  process.stderr.write('profile-load: the machine did not get quiet; measuring anyway\n');
}

async function main(): Promise<void> {
  if (process.argv.includes('--wait-quiet')) await waitQuiet();
  if (store !== 'memory')
    for (const f of [store, `${store}-wal`, `${store}-shm`]) fs.rmSync(f, { force: true });
  const nodeArgs = [
    ...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir', cpuProf] : []),
    ...arg('node-args', '').split(' ').filter(Boolean),
  ];
  // The server command: kmslab from dist/ by default, or --server-cmd (its last argument is the port).
  const custom = arg('server-cmd', '').split(' ').filter(Boolean);
  let cmd: string[] =
    custom.length > 0
      ? [...custom, String(port)]
      : [
          process.execPath,
          ...nodeArgs,
          path.join(arg('root', ROOT), 'dist/cli/bin.js'),
          'serve',
          '--store',
          store,
          '--listen',
          `127.0.0.1:${port}`,
          '--log-level',
          'warn',
          ...extra,
        ];
  // --pin (diagnosis only): server on CPU 1, load tool on CPU 0.
  if (process.argv.includes('--pin')) cmd = ['taskset', '-c', '1', ...cmd];
  const server = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
  let exited = false;
  server.on('exit', () => {
    exited = true;
  });
  // Wait for the port.
  const net = await import('node:net');
  await new Promise((r) => setTimeout(r, 300));
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (exited) throw new Error('the server exited before listening');
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssKb(server.pid!));
  }, 100);
  const phases: [string, string[]][] = [];
  if (phase === 'conv' || phase === 'both')
    phases.push(['conv c=64 rst', ['--concurrency', '64', '--seconds', seconds, '--close', 'rst']]);
  if (phase === 'keep' || phase === 'both')
    phases.push(['keepalive c=8', ['--concurrency', '8', '--seconds', seconds, '--keepalive']]);
  for (let r = 0; r < runs; r++) {
    for (const [name, args] of phases) {
      peak = Math.max(peak, rssKb(server.pid!));
      if (process.argv.includes('--wait-quiet')) await waitQuiet();
      const res = await runLoad(args, server.pid!);
      const lat = res.latency_ms as Record<string, number>;
      console.log(
        JSON.stringify({
          phase: name,
          store,
          per_s: res.per_s,
          ok: res.ok,
          failed: res.failed,
          p50: lat.p50,
          p99: lat.p99,
          max: lat.max,
          errors: res.errors,
          peakRssMB: Math.round(peak / 102.4) / 10,
          cpu: res.cpu,
          usPerOp: res.usPerOp,
        }),
      );
    }
  }
  clearInterval(sampler);
  server.kill('SIGINT');
  await new Promise((r) => server.on('exit', r));
}

await main();

function r2(x: number): number {
  return Math.round(x * 100) / 100;
}
