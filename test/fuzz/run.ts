/**
 * `npm run fuzz` — throws mutated and random inputs at every decoder and at the per-connection state
 * machine (see targets.ts), bounded by a count and a time limit.
 *
 *   tsx test/fuzz/run.ts [--iterations N] [--seconds S] [--seed S] [--targets a,b] [--replay I] [--json FILE]
 *
 * Defaults: 1,000,000 iterations, 600 s, a seed from the clock (printed). Exit status 1 on any failure,
 * each printed with its seed, iteration, input hex and the command that reproduces it.
 */
import { writeFileSync } from 'node:fs';
import { formatFailure, runFuzz, targetNames } from './engine.js';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new RangeError(`--${name} needs a value`);
  return v;
}

function positive(name: string, d: number): number {
  const v = flag(name);
  if (v === undefined) return d;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`--${name} must be a positive number, got ${v}`);
  return n;
}

if (process.argv.includes('--help')) {
  process.stdout.write(
    'usage: tsx test/fuzz/run.ts [--iterations N] [--seconds S] [--seed S] [--targets a,b] [--replay I] [--json FILE]\n' +
      `targets: ${targetNames().join(', ')}\n`,
  );
  process.exit(0);
}

const seed = flag('seed') ?? String(Date.now() % 1_000_000_000);
const iterations = Math.floor(positive('iterations', 1_000_000));
const seconds = positive('seconds', 600);
const targets = flag('targets')
  ?.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const replayFlag = flag('replay');
const replay = replayFlag !== undefined ? Number(replayFlag) : undefined;
if (replay !== undefined && !Number.isInteger(replay))
  throw new RangeError('--replay wants an iteration number');

process.stdout.write(
  `kmslab fuzz: seed ${seed}, ${replay !== undefined ? `replaying iteration ${replay}` : `${iterations.toLocaleString('en-US')} iterations or ${seconds} s`}` +
    `${targets ? `, targets ${targets.join(',')}` : ''}\n`,
);

const report = runFuzz({
  seed,
  iterations,
  seconds,
  ...(targets ? { targets } : {}),
  ...(replay !== undefined ? { replay } : {}),
  onProgress: (done, ms) => {
    if (process.stderr.isTTY)
      process.stderr.write(`\r  ${done.toLocaleString('en-US')} inputs, ${(ms / 1000).toFixed(1)} s`);
  },
});
if (process.stderr.isTTY) process.stderr.write('\n');

const rows = Object.entries(report.targets).map(([name, s]) => [
  name,
  s.runs.toLocaleString('en-US'),
  `${s.ms.toLocaleString('en-US')} ms`,
  s.runs > 0 ? `${((s.ms * 1000) / s.runs).toFixed(1)} µs` : '-',
]);
rows.unshift(['target', 'inputs', 'time', 'per input']);
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const [k, r] of rows.entries()) {
  process.stdout.write(
    `${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}\n`,
  );
  if (k === 0) process.stdout.write(`${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
}
process.stdout.write(
  `${report.iterations.toLocaleString('en-US')} inputs in ${(report.ms / 1000).toFixed(1)} s ` +
    `(${Math.round((report.iterations / report.ms) * 1000).toLocaleString('en-US')}/s, stopped by ${report.stoppedBy}); ` +
    `decoder calls: ${report.values.toLocaleString('en-US')} values, ` +
    `${Object.values(report.protocolErrors)
      .reduce((a, b) => a + b, 0)
      .toLocaleString('en-US')} ProtocolErrors\n`,
);
process.stdout.write(
  `ProtocolError codes: ${Object.entries(report.protocolErrors)
    .map(([c, n]) => `${c} ${n}`)
    .join(', ')}\n`,
);
for (const f of report.failures) process.stdout.write(`\n${formatFailure(f, targets)}\n`);
process.stdout.write(
  report.failures.length === 0
    ? 'no failures: every input gave a value or a ProtocolError\n'
    : `\n${report.failures.length} failure(s)${report.stoppedBy === 'failures' ? ' (stopped early)' : ''}\n`,
);
const json = flag('json');
if (json) writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
process.exitCode = report.failures.length > 0 ? 1 : 0;
