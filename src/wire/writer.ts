import { putU16le, putU32le } from './bytes.js';

/**
 * A little-endian writer over a buffer sized up front (callers compute `encodingLength` first), with
 * back-filling for length fields that precede what they measure. Writing past the end is a bug in
 * the encoder, not bad input, so it throws a plain RangeError.
 */
export class Writer {
  readonly bytes: Uint8Array;
  private pos: number;

  // Byte stores instead of a DataView: one object less per encoded message (a host encodes two
  // bind-time PDUs per connection), the same little-endian bytes (a Uint8Array store keeps the low 8
  // bits, as DataView's ToUint16 / ToUint32 do).
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.pos = 0;
  }

  get offset(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n > this.bytes.length) {
      throw new RangeError(`writer overflow: ${n} bytes at ${this.pos} of ${this.bytes.length}`);
    }
  }

  u8(v: number): this {
    this.room(1);
    this.bytes[this.pos] = v;
    this.pos += 1;
    return this;
  }

  u16(v: number): this {
    this.room(2);
    putU16le(this.bytes, this.pos, v);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.room(4);
    putU32le(this.bytes, this.pos, v);
    this.pos += 4;
    return this;
  }

  u64(v: bigint): this {
    this.room(8);
    const u = BigInt.asUintN(64, v);
    putU32le(this.bytes, this.pos, Number(u & 0xffff_ffffn));
    putU32le(this.bytes, this.pos + 4, Number(u >> 32n));
    this.pos += 8;
    return this;
  }

  raw(b: Uint8Array): this {
    this.room(b.length);
    this.bytes.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  zeros(n: number): this {
    this.room(n);
    this.pos += n; // the buffer starts zeroed
    return this;
  }

  /** Zero bytes until the offset, measured from `base`, is a multiple of 4. */
  align4(base = 0): this {
    const mis = (this.pos - base) & 3;
    return mis === 0 ? this : this.zeros(4 - mis);
  }

  /** Back-fills a u16 at an earlier offset (e.g. frag_length once the PDU is written). */
  patchU16(at: number, v: number): this {
    this.inside(at, 2);
    putU16le(this.bytes, at, v);
    return this;
  }

  patchU32(at: number, v: number): this {
    this.inside(at, 4);
    putU32le(this.bytes, at, v);
    return this;
  }

  private inside(at: number, n: number): void {
    if (!(at >= 0 && at + n <= this.bytes.length) || (at | 0) !== at) {
      throw new RangeError(`writer patch of ${n} bytes at ${at} outside ${this.bytes.length}`);
    }
  }

  /** The written bytes; throws if the up-front size was wrong, which would be an encoder bug. */
  finish(): Uint8Array {
    if (this.pos !== this.bytes.length) {
      throw new RangeError(`writer size mismatch: wrote ${this.pos} of ${this.bytes.length}`);
    }
    return this.bytes;
  }
}
