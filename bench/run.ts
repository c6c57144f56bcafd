/**
 * `npm run bench [-- codec|load|fleet ...] [flags]`: runs the selected benches (all by default),
 * prints one table and then one JSON line with every figure and the machine it ran on.
 *
 * `compare` (only when named) runs bench/compare.ts: --vlmcsd PATH, --rounds N, --seconds N, --tools DIR.
 * `flood` (only when named) runs bench/flood.ts: --seconds N (per phase, default 10), --connections N,
 * --idle-timeout MS, --phases pipelined,slow-readers,reference,idle,reconnect.
 *
 * Flags: --ms N (codec: measured ms per line), --seconds N (load: per phase), --target HOST:PORT and
 * --host child|in-process and --store memory|PATH (load), --no-variants (fleet), --json (JSON only).
 */
import { runCodecBench } from './codec.js';
import { type BenchSection, machine, num, parseArgs, printTable } from './common.js';
import { compareOptions, runCompareBench } from './compare.js';
import { runFleetBench } from './fleet.js';
import { floodPhases, runFloodBench } from './flood.js';
import { runLoadBench } from './load.js';

const ALL = ['codec', 'load', 'fleet'] as const;
/** Benches that run only when named: they take minutes, start other processes, open many sockets. */
const NAMED = ['compare', 'flood'] as const;
type Name = (typeof ALL)[number] | (typeof NAMED)[number];

const { words, flags } = parseArgs(process.argv.slice(2));
const unknown = words.filter((w) => ![...ALL, ...NAMED].includes(w as Name));
if (unknown.length > 0) {
  process.stderr.write(
    `bench: unknown bench ${unknown.join(', ')} (choose from ${[...ALL, ...NAMED].join(', ')})\n`,
  );
  process.exit(2);
}
const selected: Name[] = words.length > 0 ? (words as Name[]) : [...ALL];
const info = machine();
const log = (s: string) => {
  if (!flags['json']) process.stderr.write(`${s}\n`);
};
log(
  `kmslab bench: ${selected.join(', ')} on ${info.cpus} × ${info.cpuModel}, Node ${info.node}, load ${info.loadAverage.join(' ')}`,
);
const sections: BenchSection[] = [];
const t0 = performance.now();
for (const name of selected) {
  const t = performance.now();
  log(`running ${name} ...`);
  if (name === 'codec') sections.push(await runCodecBench({ ms: num(flags['ms'], 400) }));
  if (name === 'load') {
    sections.push(
      await runLoadBench({
        ...(typeof flags['target'] === 'string' ? { target: flags['target'] } : {}),
        host: flags['host'] === 'child' ? 'child' : 'in-process',
        ...(typeof flags['store'] === 'string' ? { store: flags['store'] } : {}),
        seconds: num(flags['seconds'], 4),
      }),
    );
  }
  if (name === 'compare') sections.push(await runCompareBench(compareOptions(flags)));
  if (name === 'flood') {
    const phases = floodPhases(flags['phases']);
    sections.push(
      await runFloodBench({
        seconds: num(flags['seconds'], 10),
        connections: num(flags['connections'], 10_000),
        ...(flags['idle-timeout'] !== undefined ? { idleTimeoutMs: num(flags['idle-timeout'], 30_000) } : {}),
        ...(phases ? { phases } : {}),
      }),
    );
  }
  if (name === 'fleet')
    sections.push(await runFleetBench({ variantMachines: flags['no-variants'] ? 0 : 2000 }));
  log(`  ${name} took ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
if (!flags['json']) printTable(sections);
const results: Record<string, unknown> = {};
for (const s of sections) results[s.name] = s.data;
process.stdout.write(
  `${JSON.stringify({ bench: 'kmslab', machine: info, totalSeconds: Math.round(performance.now() - t0) / 1000, results })}\n`,
);
