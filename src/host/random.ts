/**
 * Randomness enters the host only through a Random. `SeededRandom` (xoshiro128** seeded through
 * splitmix32) gives the same stream for the same seed on every machine; `fork(label)` derives an
 * independent stream so adding a consumer does not shift the others.
 */
export interface Random {
  bytes(n: number): Uint8Array;
  /**
   * Fills `out` with the bytes `bytes(out.length)` would have returned, and returns it. Optional (an
   * implementation without it still works): it lets the host reuse one buffer per request.
   */
  fill?(out: Uint8Array): Uint8Array;
  uint32(): number;
  /** Integer in [0, n). */
  below(n: number): number;
  /** Integer in [lo, hi], inclusive. */
  int(lo: number, hi: number): number;
  /** Float in [0, 1). */
  float(): number;
  fork(label: string): Random;
}

function splitmix32(a: number): () => number {
  let s = a >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function hashSeed(seed: number | string): number {
  const s = String(seed);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export class SeededRandom implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  readonly seed: string;

  constructor(seed: number | string) {
    this.seed = String(seed);
    const sm = splitmix32(hashSeed(seed));
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  uint32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  bytes(n: number): Uint8Array {
    return this.fill(new Uint8Array(n));
  }

  fill(out: Uint8Array): Uint8Array {
    const n = out.length;
    for (let i = 0; i < n; i += 4) {
      const v = this.uint32();
      out[i] = v & 0xff;
      if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = v >>> 24;
    }
    return out;
  }

  float(): number {
    return this.uint32() / 0x1_0000_0000;
  }

  below(n: number): number {
    if (n <= 0) return 0;
    return Math.floor(this.float() * n);
  }

  int(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  fork(label: string): SeededRandom {
    return new SeededRandom(`${this.seed}/${label}`);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A random GUID (version 4 layout) from a Random. */
export function randomGuid(r: Random): string {
  const b = r.bytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
