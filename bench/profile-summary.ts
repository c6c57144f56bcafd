/**
 * `npx tsx bench/profile-summary.ts FILE.cpuprofile [--top N] [--by function|file]`
 *
 * Aggregates the self time of a V8 CPU profile (node --cpu-prof) by function (name + file:line) or by
 * file, and prints the top entries with their share of the sampled time. Also prints the total time
 * in (idle), (garbage collector) and (program).
 */
import fs from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: profile-summary FILE.cpuprofile [--top N] [--by function|file]\n');
  process.exit(2);
}
const top = Number(process.argv[process.argv.indexOf('--top') + 1] ?? 40) || 40;
const by = process.argv.includes('--by') ? process.argv[process.argv.indexOf('--by') + 1] : 'function';
const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
for (let i = 0; i < p.samples.length; i++) {
  const id = p.samples[i]!;
  self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const agg = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id)!;
  const url = n.callFrame.url.replace(/^file:\/\//, '').replace(/.*\/(node_modules|dist|src)\//, '$1/');
  const key =
    by === 'file'
      ? url || n.callFrame.functionName
      : `${n.callFrame.functionName || '(anonymous)'}  ${url}:${n.callFrame.lineNumber + 1}`;
  agg.set(key, (agg.get(key) ?? 0) + us);
}
const rows = [...agg.entries()].sort((a, b) => b[1] - a[1]);
const busy = total - (agg.get('(idle)  :0') ?? 0);
console.log(`total ${(total / 1e3).toFixed(0)} ms sampled, busy (non-idle) ${(busy / 1e3).toFixed(0)} ms`);
for (const [k, us] of rows.slice(0, top)) {
  console.log(
    `${(us / 1e3).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}% ${((100 * us) / busy).toFixed(1).padStart(5)}%busy  ${k}`,
  );
}
