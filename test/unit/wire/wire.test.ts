import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRequestBody } from '../../../src/kms/body.js';
import { ProtocolError } from '../../../src/wire/errors.js';
import { fileTimeFromMs, fileTimeToIso, fileTimeToMs } from '../../../src/wire/filetime.js';
import { guidFromBytes, guidToBytes, parseGuid } from '../../../src/wire/guid.js';
import { Reader } from '../../../src/wire/reader.js';
import { decodeUtf16z, encodeUtf16Fixed } from '../../../src/wire/utf16.js';
import { Writer } from '../../../src/wire/writer.js';

describe('Reader', () => {
  it('names the field, offset, bytes needed and available when input runs out', () => {
    const r = new Reader(Uint8Array.of(1, 2, 3));
    r.u16('first');
    try {
      r.u32('second');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ProtocolError);
      const p = e as ProtocolError;
      expect([p.code, p.field, p.offset, p.needed, p.available]).toEqual(['SHORT_INPUT', 'second', 2, 4, 1]);
    }
  });

  it('clamps a window that reaches past the array (a typed error, never a RangeError)', () => {
    const r = new Reader(new Uint8Array(10), 0, 236);
    expect(r.remaining).toBe(10);
    expect(() => r.bytesView(236, 'BaseRequest')).toThrow(ProtocolError);
    expect(() => decodeRequestBody(new Uint8Array(10))).toThrow(ProtocolError);
  });

  it('bytesCopy is a real copy even over a Buffer', () => {
    const buf = Buffer.from([1, 2, 3, 4]);
    const copy = new Reader(buf).bytesCopy(4, 'x');
    buf[0] = 9;
    expect(copy[0]).toBe(1);
  });
});

describe('Writer', () => {
  it('writes little-endian, back-fills lengths and refuses a wrong up-front size', () => {
    const w = new Writer(8);
    w.u16(0).u16(0x0506).u32(0x01020304).patchU16(0, 8);
    expect([...w.finish()]).toEqual([8, 0, 6, 5, 4, 3, 2, 1]);
    expect(() => new Writer(2).u32(1)).toThrow(RangeError);
    expect(() => new Writer(4).u16(1).finish()).toThrow(RangeError);
  });
});

describe('GUIDs in Windows mixed-endian order (spec a.3)', () => {
  it('matches the KMS interface example', () => {
    const g = '51c82175-844e-4750-b0d8-ec255555bc06';
    expect(Buffer.from(guidToBytes(g)).toString('hex')).toBe('7521c8514e845047b0d8ec255555bc06');
    expect(parseGuid('{51C82175-844E-4750-B0D8-EC255555BC06}')).toBe(g);
  });
  it('round-trips any 16 bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        expect([...guidToBytes(guidFromBytes(b))]).toEqual([...b]);
      }),
    );
  });
});

describe('FILETIME and UTF-16', () => {
  it('converts the spec example (2024-01-01T00:00Z = 133485408000000000)', () => {
    expect(fileTimeFromMs(Date.UTC(2024, 0, 1))).toBe(133485408000000000n);
    expect(fileTimeToIso(133485408000000000n)).toBe('2024-01-01T00:00:00.000Z');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4e12 }), (ms) => fileTimeToMs(fileTimeFromMs(ms)) === ms),
    );
  });
  it('decodes up to the first NUL and refuses names that do not fit', () => {
    const f = encodeUtf16Fixed('TESTPC-01', 64, 'WorkstationName');
    expect(f.length).toBe(128);
    expect(decodeUtf16z(f)).toBe('TESTPC-01');
    expect(() => encodeUtf16Fixed('x'.repeat(64), 64, 'WorkstationName')).toThrow(ProtocolError);
  });
});
