import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Association, type AssociationAction } from '../../../src/rpc/association.js';
import { decodePdu } from '../../../src/rpc/decode.js';
import { encodePdu } from '../../../src/rpc/encode.js';
import { Framer } from '../../../src/rpc/framer.js';
import { ProtocolError } from '../../../src/wire/errors.js';
import {
  allCapturedPdus,
  badCaptures,
  connections,
  conversationCaptures,
  fromHex,
  pdusOf,
} from '../../unit/rpc/captures.js';

const captured = allCapturedPdus([...conversationCaptures(), ...badCaptures()]).map((p) => fromHex(p.hex));
const conversations = conversationCaptures().flatMap((c) =>
  connections(c).map((conn) => pdusOf(c, conn, 'c2s')),
);

/** Runs f; it may return anything or throw a ProtocolError, nothing else. */
function valueOrProtocolError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    expect(e.code).toMatch(/^[A-Z_]+$/);
  }
}

type Mutation =
  | { kind: 'flip'; bits: number[] }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; extra: Uint8Array };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), bits: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
);

function mutate(b: Uint8Array, m: Mutation, fixFragLength: boolean): Uint8Array {
  let out: Uint8Array;
  switch (m.kind) {
    case 'flip':
      out = b.slice();
      for (const bit of m.bits) {
        const i = (bit >> 3) % out.length;
        out[i]! ^= 1 << (bit & 7);
      }
      break;
    case 'set':
      out = b.slice();
      out[m.at % out.length] = m.value;
      break;
    case 'truncate':
      out = b.slice(0, m.at % (b.length + 1));
      break;
    case 'extend':
      out = new Uint8Array(b.length + m.extra.length);
      out.set(b);
      out.set(m.extra, b.length);
      break;
  }
  // Keep frag_length consistent so the mutation reaches the body decoders.
  if (fixFragLength && out.length >= 10 && out.length <= 0xffff) {
    out[8] = out.length & 0xff;
    out[9] = out.length >> 8;
  }
  return out;
}

/** Carries out actions like a server, checking each one's shape. */
function drive(assoc: Association, chunks: Uint8Array[]): AssociationAction[] {
  const all: AssociationAction[] = [];
  for (const c of chunks) {
    const actions = assoc.receive(c);
    for (const a of actions) {
      all.push(a);
      if (a.type === 'send') expect(() => decodePdu(a.bytes)).not.toThrow();
      if (a.type === 'close' && a.error) expect(a.error).toBeInstanceOf(ProtocolError);
      if (a.type === 'call') {
        const resp = assoc.respond(a.call, new Uint8Array(12));
        expect(decodePdu(resp)).toMatchObject({ callId: a.call.callId, contextId: a.call.contextId });
      }
    }
  }
  // After a close nothing more is produced.
  const i = all.findIndex((a) => a.type === 'close');
  if (i >= 0) expect(i).toBe(all.length - 1);
  return all;
}

const newAssociation = () =>
  new Association({
    profile: { ndr64: true, btfn: true },
    secondaryAddress: '1688',
    maxPduSize: 5840,
    maxCallSize: 16384,
    newAssocGroupId: () => 42,
  });

describe('hostile input: only values or ProtocolError', () => {
  it('arbitrary bytes → decodePdu, Framer, Association', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        valueOrProtocolError(() => decodePdu(b));
        valueOrProtocolError(() => new Framer({ maxPduSize: 5840 }).push(b));
        drive(newAssociation(), [b]);
      }),
      { numRuns: 1000 },
    );
  });

  it('arbitrary bodies behind a plausible header → decodePdu and re-encode', () => {
    const headerish = fc
      .record({
        ptype: fc.constantFrom(0, 2, 3, 11, 12, 13, 14, 15, 16, 17, 18, 19),
        flags: fc.integer({ min: 0, max: 255 }),
        auth: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 80 })),
        body: fc.uint8Array({ maxLength: 160 }),
      })
      .map(({ ptype, flags, auth, body }) => {
        const b = new Uint8Array(16 + body.length);
        b.set([5, 0, ptype, flags, 0x10, 0, 0, 0], 0);
        b[8] = b.length & 0xff;
        b[9] = b.length >> 8;
        b[10] = auth;
        b.set(body, 16);
        return b;
      });
    fc.assert(
      fc.property(headerish, (b) => {
        let pdu: ReturnType<typeof decodePdu> | undefined;
        valueOrProtocolError(() => {
          pdu = decodePdu(b);
        });
        // Whatever decodes re-encodes to the same bytes (the decoder keeps reserved/pad/trailing bytes),
        // except a 1-byte sec_addr ("\0" alone), which encodes as length 0.
        if (pdu && !('secondaryAddress' in pdu && pdu.secondaryAddress === '')) {
          expect(Buffer.from(encodePdu(pdu)).equals(Buffer.from(b))).toBe(true);
        }
        drive(newAssociation(), [b]);
      }),
      { numRuns: 1000 },
    );
  });

  it('bit-flipped / overwritten / truncated / extended captured PDUs → decodePdu', () => {
    fc.assert(
      fc.property(fc.constantFrom(...captured), mutationArb, fc.boolean(), (pdu, m, fix) => {
        valueOrProtocolError(() => decodePdu(mutate(pdu, m, fix)));
      }),
      { numRuns: 1000 },
    );
  });

  it('a conversation with one mutated PDU → Framer and Association', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...conversations),
        fc.nat(),
        mutationArb,
        fc.boolean(),
        fc.boolean(),
        (pdus, which, m, fix, oneChunk) => {
          const i = which % pdus.length;
          const chunks = pdus.map((p, j) => (j === i ? mutate(p, m, fix) : p));
          const f = new Framer({ maxPduSize: 5840 });
          for (const c of chunks) valueOrProtocolError(() => f.push(c));
          const assoc = newAssociation();
          drive(assoc, oneChunk ? [Uint8Array.from(chunks.flatMap((c) => [...c]))] : chunks);
          expect(['unbound', 'bound', 'closed']).toContain(assoc.state);
        },
      ),
      { numRuns: 500 },
    );
  });
});
