import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Framer } from '../../../src/rpc/framer.js';
import { concatBytes, connections, conversationCaptures, pdusOf, toHex } from '../../unit/rpc/captures.js';

/** Every client→server stream of the conversation captures, with the PDUs it must yield. */
const streams = conversationCaptures().flatMap((c) =>
  connections(c).map((conn) => {
    const pdus = pdusOf(c, conn, 'c2s');
    return { label: `${c.name} conn ${conn}`, stream: concatBytes(pdus), expected: pdus.map(toHex) };
  }),
);

function frame(chunks: Uint8Array[]): string[] {
  const f = new Framer({ maxPduSize: 5840 });
  const out = chunks.flatMap((c) => f.push(c)).map(toHex);
  expect(f.pendingBytes).toBe(0);
  return out;
}

/** Cuts `b` at the given (sorted, possibly repeated) offsets. */
function cut(b: Uint8Array, at: number[]): Uint8Array[] {
  const points = [0, ...at, b.length];
  return points.slice(1).map((end, i) => b.subarray(points[i]!, end));
}

describe('Framer yields the same PDUs however the stream is cut', () => {
  it('has streams', () => {
    expect(streams.length).toBeGreaterThan(20);
  });

  it.each(streams.map((s) => [s.label, s] as const))('%s: every single split point', (_, s) => {
    for (let i = 0; i <= s.stream.length; i++) {
      expect(frame(cut(s.stream, [i]))).toEqual(s.expected);
    }
  });

  it.each(streams.map((s) => [s.label, s] as const))('%s: byte by byte', (_, s) => {
    expect(frame(Array.from(s.stream, (b) => Uint8Array.of(b)))).toEqual(s.expected);
  });

  it('random multi-way splits of every stream', () => {
    fc.assert(
      fc.property(fc.constantFrom(...streams), fc.array(fc.nat(), { maxLength: 20 }), (s, raw) => {
        const at = raw.map((n) => n % (s.stream.length + 1)).sort((a, b) => a - b);
        expect(frame(cut(s.stream, at))).toEqual(s.expected);
      }),
      { numRuns: 500 },
    );
  });
});
