/**
 * What every input schema (zod) shares: how a bad value is shown, the "did you mean" for a misspelt
 * key, and one line per issue naming where it is. Used by the CLI's settings and the harness's
 * scenario files; imports nothing of kmslab.
 */
import type { z } from 'zod';

export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return v.length > 3 ? 'a list' : (JSON.stringify(v) ?? String(v));
  if (typeof v === 'object' && v !== null) return 'an object';
  return String(v);
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** The closest known name (case-insensitive edit distance, at most a third of the name), or null. */
function closest(name: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const dd = distance(name.toLowerCase(), k.toLowerCase());
    if (dd < bestD) {
      bestD = dd;
      best = k;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}

export function didYouMean(name: string, known: readonly string[], render = (k: string) => k): string {
  const c = closest(name, known);
  return c === null ? '' : ` (did you mean ${render(c)}?)`;
}

/**
 * One line per zod issue, each naming where it is: `label(path)` gives the flag (`--max-connections`)
 * or the file key (`kmslab.yaml: maxConnections`). Unknown keys get a "did you mean".
 */
export function formatIssues(
  issues: readonly z.core.$ZodIssue[],
  label: (path: readonly PropertyKey[]) => string,
  knownKeys: (path: readonly PropertyKey[]) => readonly string[] = () => [],
  renderKey: (k: string, path: readonly PropertyKey[]) => string = (k) => JSON.stringify(k),
): string[] {
  const lines: string[] = [];
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) {
        const at = label([...i.path, k]);
        const hint = didYouMean(k, knownKeys(i.path), (c) => renderKey(c, i.path));
        lines.push(`${at}: unknown ${i.path.length === 0 ? 'setting' : 'key'}${hint}`);
      }
      continue;
    }
    lines.push(`${label(i.path)}: ${i.message}`);
  }
  return lines;
}

/** `{ error }` for a zod type: "EXPECTED, got VALUE". */
export const expected = (what: string) => ({
  error: (i: { input: unknown }) => `${what}, got ${show(i.input)}`,
});
