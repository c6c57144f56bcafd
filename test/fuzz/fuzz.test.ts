/**
 * The fuzz run of test/fuzz/run.ts in small (10^4 inputs over every target, a fixed seed) so `npm test`
 * keeps the decoders honest; `npm run fuzz` runs 10^6. KMSLAB_FUZZ_SEED overrides the seed.
 */
import { describe, expect, it } from 'vitest';
import { buildCorpus } from './corpus.js';
import { caseAt, formatFailure, runFuzz, targetNames } from './engine.js';

const seed = process.env['KMSLAB_FUZZ_SEED'] ?? 'npm-test';

describe('fuzz (10^4 inputs): only values or ProtocolError', () => {
  it('the corpus holds every kind of input', () => {
    const c = buildCorpus();
    expect(c.pdus.length).toBeGreaterThan(150);
    expect(c.conversations.length).toBeGreaterThan(30);
    // Verified request/response pairs of every KMS version, in both NDR syntaxes.
    for (const v of [4, 5, 6]) {
      for (const ndr of ['ndr32', 'ndr64']) {
        expect(c.pairs.some((p) => p.version === v && p.ndr === ndr)).toBe(true);
      }
    }
    const ptypes = new Set(c.pdus.map((b) => b[2]));
    // Every connection-oriented PTYPE, and an unknown one (the bad-unknown-ptype capture).
    for (const t of [0, 2, 3, 11, 12, 13, 14, 15, 16, 17, 18, 19]) expect(ptypes).toContain(t);
    expect([...ptypes].some((t) => t !== undefined && t > 19)).toBe(true);
  });

  it(`10,000 inputs, seed ${seed}`, () => {
    const report = runFuzz({ seed, iterations: 10_000, seconds: 20 });
    const text = report.failures.map((f) => formatFailure(f)).join('\n\n');
    expect(report.failures, text).toEqual([]);
    expect(report.iterations).toBe(10_000);
    // Every target ran, and the mutations reached both outcomes of the decoders.
    for (const name of targetNames()) expect(report.targets[name]!.runs).toBeGreaterThan(100);
    expect(report.values).toBeGreaterThan(1000);
    expect(Object.keys(report.protocolErrors).length).toBeGreaterThanOrEqual(10);
  });

  it('an iteration is a pure function of (seed, iteration): --replay reruns exactly it', () => {
    const a = caseAt('replay', 1234);
    const b = caseAt('replay', 1234);
    expect(b.target.name).toBe(a.target.name);
    expect(b.c.note).toBe(a.c.note);
    expect(b.c.parts).toEqual(a.c.parts);
    expect(caseAt('replay', 1235).c.parts).not.toEqual(a.c.parts);
    const r = runFuzz({ seed: 'replay', iterations: 0, replay: 1234 });
    expect(r.iterations).toBe(1);
    expect(r.targets[a.target.name]!.runs).toBe(1);
  });
});
