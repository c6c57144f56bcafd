import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { randomGuid, SeededRandom } from '../../../src/host/random.js';

/** xoshiro128** as its authors publish it, in BigInt arithmetic (an independent implementation). */
function referenceXoshiro128ss(state: [number, number, number, number], n: number): number[] {
  const M = 0xffffffffn;
  const s = state.map((x) => BigInt(x >>> 0));
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & M;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const result = (rotl((s[1]! * 5n) & M, 7n) * 9n) & M;
    const t = (s[1]! << 9n) & M;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11n);
    out.push(Number(result));
  }
  return out;
}

describe('SeededRandom', () => {
  it('is xoshiro128** (checked against a reference implementation from a set state)', () => {
    fc.assert(
      fc.property(fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat()), (st) => {
        fc.pre((st[0] | st[1] | st[2] | st[3]) !== 0);
        const r = new SeededRandom(0);
        Object.assign(r, { a: st[0] | 0, b: st[1] | 0, c: st[2] | 0, d: st[3] | 0 });
        expect(Array.from({ length: 20 }, () => r.uint32())).toEqual(referenceXoshiro128ss(st, 20));
      }),
      { numRuns: 50 },
    );
  });

  it('gives the same stream for the same seed, and a number seed equals its string', () => {
    const a = new SeededRandom(42);
    const b = new SeededRandom('42');
    expect(Array.from(a.bytes(64))).toEqual(Array.from(b.bytes(64)));
    expect(a.uint32()).toBe(b.uint32());
    expect(a.seed).toBe('42');
  });

  it('pins the streams of two seeds (a change here changes every seeded ePID, HwId and CMID)', () => {
    const r = new SeededRandom(1);
    expect(Array.from({ length: 4 }, () => r.uint32())).toEqual([
      350175097, 640680501, 3603964963, 713971460,
    ]);
    expect(Buffer.from(new SeededRandom('kmslab').bytes(8)).toString('hex')).toBe('10fda8549d31e86d');
  });

  it('gives different streams for different seeds', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(Buffer.from(new SeededRandom(i).bytes(8)).toString('hex'));
    expect(seen.size).toBe(200);
  });

  it('fork(label) is deterministic, label-specific, and independent of how much the parent used', () => {
    const p1 = new SeededRandom('s');
    const p2 = new SeededRandom('s');
    p2.bytes(100);
    expect(Array.from(p1.fork('epid').bytes(16))).toEqual(Array.from(p2.fork('epid').bytes(16)));
    expect(Array.from(p1.fork('epid').bytes(16))).not.toEqual(Array.from(p1.fork('hwid').bytes(16)));
    expect(p1.fork('x').seed).toBe('s/x');
  });

  it('bytes(n) has n bytes and is a prefix-consistent view of the uint32 stream', () => {
    for (const n of [0, 1, 2, 3, 4, 5, 15, 16, 17]) {
      expect(new SeededRandom(7).bytes(n).length).toBe(n);
    }
    const words = new SeededRandom(7);
    const w0 = words.uint32();
    const b = new SeededRandom(7).bytes(4);
    expect(Buffer.from(b).readUInt32LE(0)).toBe(w0);
  });

  it('keeps below/int/float in range', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.integer({ min: -1000, max: 1000 }),
        fc.integer({ min: 0, max: 100000 }),
        (seed, lo, span) => {
          const r = new SeededRandom(seed);
          for (let i = 0; i < 20; i++) {
            const f = r.float();
            expect(f).toBeGreaterThanOrEqual(0);
            expect(f).toBeLessThan(1);
            const v = r.int(lo, lo + span);
            expect(Number.isInteger(v)).toBe(true);
            expect(v).toBeGreaterThanOrEqual(lo);
            expect(v).toBeLessThanOrEqual(lo + span);
            const k = r.below(span + 1);
            expect(k).toBeGreaterThanOrEqual(0);
            expect(k).toBeLessThanOrEqual(span);
          }
          expect(r.below(0)).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('int(lo, hi) reaches both ends of a small range', () => {
    const r = new SeededRandom('ends');
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) seen.add(r.int(3, 6));
    expect([...seen].sort()).toEqual([3, 4, 5, 6]);
  });
});

describe('SeededRandom.fill', () => {
  it('writes the bytes bytes(n) would have given, in the same stream, into the buffer it is given', () => {
    for (const n of [0, 1, 5, 16, 17]) {
      const a = new SeededRandom('fill');
      const b = new SeededRandom('fill');
      const buf = new Uint8Array(n).fill(0xee);
      expect(b.fill(buf)).toBe(buf);
      expect([...buf]).toEqual([...a.bytes(n)]);
      // The streams stay in step afterwards.
      expect(b.uint32()).toBe(a.uint32());
    }
  });
});

describe('randomGuid', () => {
  it('is a canonical version-4 GUID, deterministic per seed', () => {
    const a = randomGuid(new SeededRandom(5));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(randomGuid(new SeededRandom(5))).toBe(a);
    expect(randomGuid(new SeededRandom(6))).not.toBe(a);
  });
});
