import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../src/store/memory.js';
import { record } from './helpers.js';

describe('memory store keeps its history bounded', () => {
  it('keeps only the newest records while seq, historyCount and sinceSeq stay right', () => {
    const s = new MemoryStore({ maxHistory: 10 });
    const seqs: number[] = [];
    for (let i = 1; i <= 35; i++) seqs.push(s.commit({ history: record(i) }));
    expect(seqs).toEqual(Array.from({ length: 35 }, (_, i) => i + 1));
    expect(s.historyCount()).toBe(35);
    const kept = s.history();
    expect(kept.length).toBeLessThanOrEqual(10);
    expect(kept.at(-1)!.seq).toBe(35);
    expect(kept.map((r) => r.seq)).toEqual(kept.map((_, i) => 36 - kept.length + i));
    expect(s.history({ sinceSeq: 33 }).map((r) => r.seq)).toEqual([34, 35]);
    s.reset();
    expect(s.commit({ history: record(1) })).toBe(1);
  });
});
