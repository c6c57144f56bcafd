import { ProtocolError } from './errors.js';

/**
 * A bounds-checked little-endian cursor over a byte array. Every read names its field, so a short
 * input fails with the field, the offset, the bytes needed and the bytes available (never a RangeError
 * or a silently truncated value).
 */
export class Reader {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private pos: number;
  private readonly end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // A window past the array is clamped, so reads fail with SHORT_INPUT, never a RangeError.
    this.end = Math.max(0, Math.min(end, bytes.length));
    this.pos = Math.max(0, Math.min(start, this.end));
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Throws SHORT_INPUT unless `n` more bytes are available for `field`. */
  need(n: number, field: string): void {
    if (n < 0 || this.pos + n > this.end) {
      throw new ProtocolError(
        'SHORT_INPUT',
        `${field}: needs ${n} bytes at offset ${this.pos}, ${this.end - this.pos} available`,
        { field, offset: this.pos, needed: n, available: this.end - this.pos },
      );
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.view.getUint8(this.pos++);
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  i32(field: string): number {
    this.need(4, field);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A view (not a copy) of the next `n` bytes. */
  bytesView(n: number, field: string): Uint8Array {
    this.need(n, field);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** A copy of the next `n` bytes, for values that outlive the input buffer. */
  bytesCopy(n: number, field: string): Uint8Array {
    // Uint8Array.prototype.slice, not Buffer's (which would return a view over the same memory).
    return Uint8Array.prototype.slice.call(this.bytesView(n, field));
  }

  skip(n: number, field: string): void {
    this.need(n, field);
    this.pos += n;
  }

  /** Skips zero to three bytes so the cursor, measured from `base`, is a multiple of 4. */
  align4(field: string, base = 0): void {
    const mis = (this.pos - base) & 3;
    if (mis !== 0) this.skip(4 - mis, field);
  }
}
