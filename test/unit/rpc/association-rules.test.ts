/**
 * Golden tests of the RPC rules of issue 15 item 3, each citing its rule (docs/protocol.md a.2, a.5,
 * a.7-a.10): a request or alter_context before bind gets fault nca_s_proto_error and the connection
 * closes; a bind naming an association group never issued gets a bind_nak; the bind_ack states one
 * negotiated fragment size; a big-endian PDU is answered (bind_nak / fault) with a log line naming the
 * reason. Bytes: fixtures/rpc/association-rules.json.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AssociationAction, AssociationGroups } from '../../../src/rpc/association.js';
import { BIND_NAK_REASON, NCA_STATUS, PTYPE } from '../../../src/rpc/constants.js';
import { decodePdu } from '../../../src/rpc/decode.js';
import { encodePdu } from '../../../src/rpc/encode.js';
import { negotiateFragSize } from '../../../src/rpc/negotiate.js';
import type { BindPdu } from '../../../src/rpc/pdu.js';
import { conversationCaptures, fromHex, pdusOf, testAssociation, toHex } from './captures.js';

interface GoldenCase {
  rule: string;
  host: 'fresh' | 'bound';
  in: string;
  out: string[];
  close?: string;
}
const GOLDEN = JSON.parse(
  readFileSync(new URL('../../../fixtures/rpc/association-rules.json', import.meta.url), 'utf8'),
) as { cases: Record<string, GoldenCase> };

const v6 = conversationCaptures().find((c) => c.name === 'v6-win10')!;
const [bindBytes, alterBytes] = pdusOf(v6, 0, 'c2s') as [Uint8Array, Uint8Array];
const bind = decodePdu(bindBytes) as BindPdu;

const mk = testAssociation;
const bound = () => {
  const a = mk();
  a.receive(bindBytes);
  a.receive(alterBytes);
  return a;
};
const sentHex = (actions: AssociationAction[]) =>
  actions.flatMap((a) => (a.type === 'send' ? [toHex(a.bytes)] : []));
const notes = (actions: AssociationAction[]) =>
  actions.flatMap((a) => (a.type === 'note' ? [a.message] : []));
const closeOf = (actions: AssociationAction[]) => actions.find((a) => a.type === 'close');

describe('golden answers (fixtures/rpc/association-rules.json)', () => {
  for (const [name, c] of Object.entries(GOLDEN.cases)) {
    it(`${name}: ${c.rule}`, () => {
      const host = c.host === 'bound' ? bound() : mk();
      const input = fromHex(c.in);
      const whole = host.receive(input);
      expect(sentHex(whole)).toEqual(c.out);
      // One log line for each refusal; an accepted bind logs nothing.
      expect(notes(whole)).toHaveLength(c.out.every((h) => h.startsWith('05000c')) ? 0 : 1);
      if (c.close) {
        expect(closeOf(whole)).toMatchObject({ type: 'close', error: { code: c.close } });
        expect(whole.at(-1)?.type).toBe('close');
        expect(host.state).toBe('closed');
      } else {
        expect(closeOf(whole)).toBeUndefined();
      }
      // Byte by byte: the same answer (the header decides, before the body arrives).
      const byByte = c.host === 'bound' ? bound() : mk();
      const acts = Array.from(input, (b) => byByte.receive(Uint8Array.of(b))).flat();
      expect(sentHex(acts)).toEqual(c.out);
    });
  }
});

describe('spec a.10: request / alter_context before bind', () => {
  it('the fault echoes the request call_id and p_cont_id; the connection is closed after it', () => {
    const v6Request = pdusOf(v6, 0, 'c2s')[2]!;
    const req = decodePdu(v6Request);
    if (req.type !== PTYPE.REQUEST) throw new Error('not a request');
    const a = mk();
    const r = a.receive(encodePdu({ ...req, callId: 77, contextId: 3 }));
    expect(r.map((x) => x.type)).toEqual(['note', 'send', 'close']);
    const fault = decodePdu((r[1] as { bytes: Uint8Array }).bytes);
    expect(fault).toMatchObject({
      type: PTYPE.FAULT,
      flags: 0x23,
      callId: 77,
      contextId: 3,
      status: NCA_STATUS.PROTO_ERROR,
    });
    expect(notes(r)[0]).toMatch(/request \(call 77\) before bind: fault proto_error/);
    expect(a.receive(bindBytes)).toEqual([]); // closed: nothing more is read
  });
});

describe('spec a.8: association groups', () => {
  it('a group issued on one connection may be joined from another of the same host', () => {
    const groups = new AssociationGroups();
    const first = mk({ groups });
    const ack = decodePdu(sentHex(first.receive(bindBytes)).map(fromHex)[0]!);
    expect(ack).toMatchObject({ type: PTYPE.BIND_ACK, assocGroupId: 0xabcdef01 });
    const second = mk({ groups, newAssocGroupId: () => 0x11111111 });
    const join = decodePdu(
      fromHex(sentHex(second.receive(encodePdu({ ...bind, assocGroupId: 0xabcdef01 })))[0]!),
    );
    expect(join).toMatchObject({ type: PTYPE.BIND_ACK, assocGroupId: 0xabcdef01 });
    expect(second.state).toBe('bound');
  });

  it('an unknown group: bind_nak 0, still unbound, and a bind asking for a new group then works', () => {
    const a = mk({ groups: new AssociationGroups() });
    const nak = decodePdu(fromHex(sentHex(a.receive(encodePdu({ ...bind, assocGroupId: 5 })))[0]!));
    expect(nak).toMatchObject({ type: PTYPE.BIND_NAK, rejectReason: BIND_NAK_REASON.NOT_SPECIFIED });
    expect(a.state).toBe('unbound');
    const ack = decodePdu(fromHex(sentHex(a.receive(bindBytes))[0]!));
    expect(ack).toMatchObject({ type: PTYPE.BIND_ACK, assocGroupId: 0xabcdef01 });
  });

  it('the registry keeps the most recently issued ids, up to its limit', () => {
    const g = new AssociationGroups(3);
    for (const id of [1, 2, 3, 4]) g.record(id);
    expect([1, 2, 3, 4].map((id) => g.has(id))).toEqual([false, true, true, true]);
    g.record(2); // issued again: now the newest
    g.record(5);
    expect([2, 3, 4, 5].map((id) => g.has(id))).toEqual([true, false, true, true]);
  });
});

describe('spec a.7: one negotiated fragment size', () => {
  const ref = (x: number, r: number, ours: number) => Math.min(Math.max(2048, Math.min(x, r)), ours) & ~7;

  it('table: the issue formula max(2048, min(xmit, recv, ours)), rounded down to 8', () => {
    expect(negotiateFragSize(5840, 5840, 5840)).toBe(5840); // vlmcs and Windows clients
    expect(negotiateFragSize(9000, 4281, 5840)).toBe(4280);
    expect(negotiateFragSize(1000, 65535, 5840)).toBe(2048); // raised to 2048
    expect(negotiateFragSize(65535, 65535, 5840)).toBe(5840); // capped by ours
    expect(negotiateFragSize(65535, 65535, 1500)).toBe(1496); // never more than --max-pdu-size
  });

  it('property: both fields equal, ≥ 2048 unless ours is smaller, ≤ ours, a multiple of 8', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        // From the smallest --max-pdu-size that still takes the 160-byte bind, to the 5840 cap.
        fc.integer({ min: 160, max: 5840 }),
        (x, r, ours) => {
          const n = negotiateFragSize(x, r, ours);
          expect(n).toBe(ref(x, r, ours));
          expect(n % 8).toBe(0);
          expect(n).toBeLessThanOrEqual(ours);
          if (ours >= 2048) expect(n).toBe(Math.max(2048, Math.min(x, r, ours)) & ~7);
          const ack = decodePdu(
            fromHex(
              sentHex(
                mk({ maxPduSize: ours }).receive(encodePdu({ ...bind, maxXmitFrag: x, maxRecvFrag: r })),
              )[0]!,
            ),
          );
          expect(ack).toMatchObject({ type: PTYPE.BIND_ACK, maxXmitFrag: n, maxRecvFrag: n });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('alter_context_resp states the size negotiated at bind, whatever the alter_context asks', () => {
    const a = mk();
    a.receive(encodePdu({ ...bind, maxXmitFrag: 3003, maxRecvFrag: 5840 }));
    const alter = decodePdu(alterBytes);
    if (alter.type !== PTYPE.ALTER_CONTEXT) throw new Error('not an alter_context');
    const resp = decodePdu(fromHex(sentHex(a.receive(encodePdu({ ...alter, maxXmitFrag: 5840 })))[0]!));
    expect(resp).toMatchObject({ type: PTYPE.ALTER_CONTEXT_RESP, maxXmitFrag: 3000, maxRecvFrag: 3000 });
  });

  it('responses are cut to the negotiated size', () => {
    const a = mk();
    a.receive(encodePdu({ ...bind, maxXmitFrag: 2048, maxRecvFrag: 2048 }));
    const out = a.respond(
      { callId: 5, contextId: 1, opnum: 0, syntax: 'ndr64', stub: new Uint8Array(0) },
      new Uint8Array(5000),
    );
    const frags: number[] = [];
    for (let at = 0; at < out.length; ) {
      const len = out[at + 8]! | (out[at + 9]! << 8);
      frags.push(len);
      at += len;
    }
    expect(Math.max(...frags)).toBeLessThanOrEqual(2048);
    expect(frags.length).toBe(3);
  });
});

describe('spec a.2: big-endian PDUs', () => {
  it('a log line names the reason; other PTYPEs in big-endian just close', () => {
    const be = fromHex(GOLDEN.cases['bind_big_endian']!.in);
    const r = mk().receive(be);
    expect(notes(r)).toEqual([
      'BAD_DREP: big-endian bind (call 2; packed_drep 00 00 00 00): only little-endian is supported: bind_nak 6',
    ]);
    const shutdownLike = be.slice();
    shutdownLike[2] = PTYPE.AUTH3;
    const s = mk().receive(shutdownLike);
    expect(s.map((x) => x.type)).toEqual(['note', 'close']);
    expect(closeOf(s)).toMatchObject({ error: { code: 'BAD_DREP' } });
  });

  it('after good PDUs in the same chunk: those are answered, then the big-endian one', () => {
    const be = fromHex(GOLDEN.cases['request_big_endian']!.in);
    const a = mk();
    const r = a.receive(Uint8Array.from([...bindBytes, ...alterBytes, ...be]));
    expect(r.map((x) => x.type)).toEqual(['send', 'send', 'note', 'send', 'close']);
    expect(sentHex(r).at(-1)).toBe(GOLDEN.cases['request_big_endian']!.out[0]);
  });
});
