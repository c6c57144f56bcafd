/**
 * A little-endian writer over a buffer sized up front (callers compute `encodingLength` first), with
 * back-filling for length fields that precede what they measure. Writing past the end is a bug in
 * the encoder, not bad input, so it throws a plain RangeError.
 */
export class Writer {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private pos: number;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
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
    this.view.setUint8(this.pos, v);
    this.pos += 1;
    return this;
  }

  u16(v: number): this {
    this.room(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.room(4);
    this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
    return this;
  }

  u64(v: bigint): this {
    this.room(8);
    this.view.setBigUint64(this.pos, BigInt.asUintN(64, v), true);
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
    this.view.setUint16(at, v, true);
    return this;
  }

  patchU32(at: number, v: number): this {
    this.view.setUint32(at, v >>> 0, true);
    return this;
  }

  /** The written bytes; throws if the up-front size was wrong, which would be an encoder bug. */
  finish(): Uint8Array {
    if (this.pos !== this.bytes.length) {
      throw new RangeError(`writer size mismatch: wrote ${this.pos} of ${this.bytes.length}`);
    }
    return this.bytes;
  }
}
