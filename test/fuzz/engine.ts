/**
 * The fuzz loop. Iteration `i` of seed `s` draws everything (target, base input, mutations, chunking)
 * from `new SeededRandom(`${s}/${i}`)`, so any single input is reproduced by its (seed, iteration, the
 * same target list) alone: `npm run fuzz -- --seed s --replay i`.
 */
import { SeededRandom } from '../../src/host/random.js';
import { buildCorpus } from './corpus.js';
import { type FuzzCase, outcomes, TARGETS, type Target } from './targets.js';

export interface FuzzOptions {
  seed: string;
  /** Stop after this many inputs... */
  iterations: number;
  /** ...or after this many seconds, whichever comes first. */
  seconds?: number;
  /** Only these targets (by name); default all. */
  targets?: string[];
  /** Run only this iteration (to reproduce a failure). */
  replay?: number;
  /** Stop after this many failures (default 20). */
  maxFailures?: number;
  onProgress?: (done: number, elapsedMs: number) => void;
}

export interface FuzzFailureReport {
  seed: string;
  iteration: number;
  target: string;
  error: string;
  stack: string;
  note: string;
  /** The input, one hex string per part (chunk, PDU). */
  hex: string[];
}

export interface TargetStats {
  runs: number;
  ms: number;
}

export interface FuzzReport {
  seed: string;
  iterations: number;
  ms: number;
  stoppedBy: 'iterations' | 'time' | 'failures';
  targets: Record<string, TargetStats>;
  /** Calls that returned a value vs ProtocolError codes seen (all targets together). */
  values: number;
  protocolErrors: Record<string, number>;
  failures: FuzzFailureReport[];
}

function selectTargets(names?: string[]): Target[] {
  if (!names || names.length === 0) return [...TARGETS];
  const out = TARGETS.filter((t) => names.includes(t.name));
  const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
  if (unknown.length > 0) {
    throw new RangeError(
      `unknown fuzz target(s) ${unknown.join(', ')}; known: ${TARGETS.map((t) => t.name).join(', ')}`,
    );
  }
  return out;
}

export function targetNames(): string[] {
  return TARGETS.map((t) => t.name);
}

/** The input of iteration `i`: its target and case (built, not run). */
export function caseAt(
  seed: string,
  i: number,
  targets: Target[] = [...TARGETS],
  total = targets.reduce((n, t) => n + t.weight, 0),
  corpus = buildCorpus(),
): { target: Target; c: FuzzCase } {
  const r = new SeededRandom(`${seed}/${i}`);
  let at = r.below(total);
  let target = targets[0]!;
  for (const t of targets) {
    if (at < t.weight) {
      target = t;
      break;
    }
    at -= t.weight;
  }
  return { target, c: target.gen(r, corpus) };
}

export function runFuzz(opts: FuzzOptions): FuzzReport {
  const corpus = buildCorpus();
  const targets = selectTargets(opts.targets);
  const total = targets.reduce((n, t) => n + t.weight, 0);
  const stats: Record<string, TargetStats> = Object.fromEntries(
    targets.map((t) => [t.name, { runs: 0, ms: 0 }]),
  );
  const failures: FuzzFailureReport[] = [];
  const maxFailures = opts.maxFailures ?? 20;
  outcomes.values = 0;
  outcomes.errors.clear();
  const started = performance.now();
  const deadline = opts.seconds !== undefined ? started + opts.seconds * 1000 : Number.POSITIVE_INFINITY;
  let stoppedBy: FuzzReport['stoppedBy'] = 'iterations';
  const from = opts.replay ?? 0;
  const to = opts.replay !== undefined ? opts.replay + 1 : opts.iterations;
  let done = 0;
  for (let i = from; i < to; i++) {
    if ((i & 255) === 0 && i !== from) {
      const now = performance.now();
      if (now > deadline) {
        stoppedBy = 'time';
        break;
      }
      if ((i & 0x3fff) === 0) opts.onProgress?.(done, now - started);
    }
    const { target, c } = caseAt(opts.seed, i, targets, total, corpus);
    const st = stats[target.name]!;
    const t0 = performance.now();
    try {
      c.run();
    } catch (e) {
      const err = e as Error;
      failures.push({
        seed: opts.seed,
        iteration: i,
        target: target.name,
        error: `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}`,
        stack: err?.stack ?? '',
        note: c.note,
        hex: c.parts.map((p) => Buffer.from(p).toString('hex')),
      });
    }
    st.ms += performance.now() - t0;
    st.runs += 1;
    done += 1;
    if (failures.length >= maxFailures) {
      stoppedBy = 'failures';
      break;
    }
  }
  for (const s of Object.values(stats)) s.ms = Math.round(s.ms);
  return {
    seed: opts.seed,
    iterations: done,
    ms: Math.round(performance.now() - started),
    stoppedBy,
    targets: stats,
    values: outcomes.values,
    protocolErrors: Object.fromEntries([...outcomes.errors].sort((a, b) => b[1] - a[1])),
    failures,
  };
}

/** A failure as text: what to rerun, the error, the input. */
export function formatFailure(f: FuzzFailureReport, targets?: string[]): string {
  const only = targets && targets.length > 0 ? ` --targets ${targets.join(',')}` : '';
  return [
    `FUZZ FAILURE target=${f.target} seed=${f.seed} iteration=${f.iteration}`,
    `  reproduce: npm run fuzz -- --seed ${f.seed}${only} --replay ${f.iteration}`,
    `  error: ${f.error}`,
    `  options: ${f.note}`,
    ...f.hex.map((h, i) => `  input[${i}] (${h.length / 2} bytes): ${h}`),
    ...f.stack
      .split('\n')
      .slice(1, 6)
      .map((l) => `  ${l.trim()}`),
  ].join('\n');
}
