import { describe, expect, it } from 'vitest';
import { startLabHost } from '../../../src/harness/lab-host.js';
import { startHostRuntime } from '../../../src/server/runtime.js';
import { DEFAULT_MAX_HISTORY, MemoryStore } from '../../../src/store/memory.js';
import { openStore } from '../../../src/store/store.js';
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

  it('keeps 10,000 rows by default; openStore, the runtime and serve --history-limit set another bound', async () => {
    expect(DEFAULT_MAX_HISTORY).toBe(10_000);
    expect(new MemoryStore().maxHistory).toBe(10_000);
    expect((openStore('memory') as MemoryStore).maxHistory).toBe(10_000);
    expect((openStore('memory', { historyLimit: 5 }) as MemoryStore).maxHistory).toBe(5);
    const rt = await startHostRuntime({
      store: 'memory',
      historyLimit: 7,
      listen: [{ host: '127.0.0.1', port: 0 }],
    });
    try {
      expect((rt.store as MemoryStore).maxHistory).toBe(7);
    } finally {
      await rt.close();
    }
    const lab = await startLabHost({ seed: 1, runtime: { historyLimit: 3 } });
    try {
      for (let i = 0; i < 40; i++) await lab.activate({ product: 'Windows 10 Enterprise' });
      expect(lab.history().length).toBeLessThanOrEqual(3);
      expect(lab.history().at(-1)!.seq).toBe(40);
    } finally {
      await lab.close();
    }
    expect(() => new MemoryStore({ maxHistory: 0 })).toThrow(/at least 1/);
    expect(() => new MemoryStore({ maxHistory: 2.5 })).toThrow(/whole number/);
  });
});
