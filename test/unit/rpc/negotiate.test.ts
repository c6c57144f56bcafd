import { describe, expect, it } from 'vitest';
import { KMS_INTERFACE, NDR32_SYNTAX, NDR64_SYNTAX, NULL_SYNTAX, PTYPE } from '../../../src/rpc/constants.js';
import { decodePdu } from '../../../src/rpc/decode.js';
import { type HostProfile, negotiate } from '../../../src/rpc/negotiate.js';
import {
  btfnTransferSyntax,
  type ContextResult,
  type PresentationContext,
  type TransferSyntax,
  transferSyntax,
} from '../../../src/rpc/pdu.js';
import { badCaptures, type Capture, conversationCaptures, fromHex, hostProfile } from './captures.js';

/** (request, answer) pairs of bind→bind_ack and alter_context→alter_context_resp in a capture. */
function negotiations(c: Capture) {
  const out: { label: string; contexts: PresentationContext[]; results: ContextResult[] }[] = [];
  const decoded = c.pdus.flatMap((p, i) => {
    if (p.hex === undefined) return [];
    try {
      return [{ i, conn: p.conn ?? 0, pdu: decodePdu(fromHex(p.hex)) }];
    } catch {
      return []; // bad-* inputs that are meant not to decode
    }
  });
  for (const { i, conn, pdu } of decoded) {
    if (pdu.type !== PTYPE.BIND && pdu.type !== PTYPE.ALTER_CONTEXT) continue;
    const want = pdu.type === PTYPE.BIND ? PTYPE.BIND_ACK : PTYPE.ALTER_CONTEXT_RESP;
    const answer = decoded.find((d) => d.i > i && d.conn === conn && d.pdu.type === want);
    if (!answer || (answer.pdu.type !== PTYPE.BIND_ACK && answer.pdu.type !== PTYPE.ALTER_CONTEXT_RESP))
      continue;
    out.push({ label: `${c.name}#${i}`, contexts: pdu.contexts, results: answer.pdu.results });
  }
  return out;
}

const ndr32 = transferSyntax(NDR32_SYNTAX.uuid, 2);
const ndr64 = transferSyntax(NDR64_SYNTAX.uuid, 1);
const btfn3 = btfnTransferSyntax(0x03);
const kms = (contextId: number, ...ts: TransferSyntax[]): PresentationContext => ({
  contextId,
  abstractSyntax: { ...KMS_INTERFACE },
  transferSyntaxes: ts,
});
const ACCEPT_32: ContextResult = { result: 0, reason: 0, transferSyntax: { ...NDR32_SYNTAX } };
const ACCEPT_64: ContextResult = { result: 0, reason: 0, transferSyntax: { ...NDR64_SYNTAX } };
const REJECT = (reason: number): ContextResult => ({ result: 2, reason, transferSyntax: { ...NULL_SYNTAX } });
const ACK = (bits: number): ContextResult => ({
  result: 3,
  reason: bits,
  transferSyntax: { ...NULL_SYNTAX },
});
const VLMCSD: HostProfile = { ndr64: true, btfn: true };

describe('negotiate() against every captured bind_ack / alter_context_resp', () => {
  const cases = [...conversationCaptures(), ...badCaptures()].flatMap((c) =>
    negotiations(c).map((n) => ({ ...n, profile: hostProfile(c) })),
  );

  it('found the negotiations', () => {
    expect(cases.length).toBeGreaterThan(40);
    // The server-side -N0 / -B0 captures are among them.
    expect(cases.some((c) => !c.profile.ndr64)).toBe(true);
    expect(cases.some((c) => !c.profile.btfn)).toBe(true);
  });

  it.each(cases.map((c) => [c.label, c] as const))('%s', (_, c) => {
    expect(negotiate(c.contexts, c.profile).results).toEqual(c.results);
  });
});

describe('negotiate() rules (spec a.4)', () => {
  it('unknown interface → 2/1 and unknown transfer syntax → 2/2 (bad-* captures)', () => {
    const bad = Object.fromEntries(badCaptures().map((c) => [c.name, c]));
    for (const [name, reason] of [
      ['bad-bind-unknown-interface', 1],
      ['bad-bind-unknown-transfer', 2],
    ] as const) {
      const [n] = negotiations(bad[name]!);
      expect(n).toBeDefined();
      const { results, accepted } = negotiate(n!.contexts, VLMCSD);
      expect(results).toEqual([REJECT(reason)]);
      expect(accepted.size).toBe(0);
    }
  });

  it('rule 1: interface major version ≠ 1 → 2/1; a minor version is fine', () => {
    const c = kms(0, ndr32);
    const v2 = { ...c, abstractSyntax: { ...c.abstractSyntax, versionMajor: 2 } };
    const v1_7 = { ...c, contextId: 1, abstractSyntax: { ...c.abstractSyntax, versionMinor: 7 } };
    expect(negotiate([v2, v1_7], VLMCSD).results).toEqual([REJECT(1), ACCEPT_32]);
  });

  it('rule 2: BTFN → 3 / bitmask[0] & 3, or 2/2 when the host has BTFN off', () => {
    expect(negotiate([kms(0, btfnTransferSyntax(0x01))], VLMCSD).results).toEqual([ACK(1)]);
    expect(negotiate([kms(0, btfnTransferSyntax(0xff))], VLMCSD).results).toEqual([ACK(3)]);
    expect(negotiate([kms(0, btfnTransferSyntax(0x00))], VLMCSD).results).toEqual([ACK(0)]);
    expect(negotiate([kms(0, btfn3)], { ndr64: true, btfn: false }).results).toEqual([REJECT(2)]);
    expect(negotiate([kms(0, btfn3)], VLMCSD).accepted.size).toBe(0);
  });

  it('rule 3: an NDR64 host accepts NDR64 and rejects NDR32 only when NDR64 is offered too', () => {
    const both = negotiate([kms(0, ndr32), kms(1, ndr64), kms(2, btfn3)], VLMCSD);
    expect(both.results).toEqual([REJECT(2), ACCEPT_64, ACK(3)]);
    expect([...both.accepted]).toEqual([[1, 'ndr64']]);
    const alone = negotiate([kms(0, ndr32), kms(1, btfn3)], VLMCSD);
    expect(alone.results).toEqual([ACCEPT_32, ACK(3)]);
    expect([...alone.accepted]).toEqual([[0, 'ndr32']]);
  });

  it('rule 3: NDR64 offered on a foreign interface does not cost the NDR32 context', () => {
    const foreign: PresentationContext = {
      contextId: 1,
      abstractSyntax: { uuid: '00000000-1111-2222-3333-444444444444', versionMajor: 1, versionMinor: 0 },
      transferSyntaxes: [ndr64],
    };
    expect(negotiate([kms(0, ndr32), foreign], VLMCSD).results).toEqual([ACCEPT_32, REJECT(1)]);
  });

  it('rule 4: a host without NDR64 accepts NDR32 and rejects NDR64', () => {
    const r = negotiate([kms(0, ndr32), kms(1, ndr64), kms(2, btfn3)], { ndr64: false, btfn: true });
    expect(r.results).toEqual([ACCEPT_32, REJECT(2), ACK(3)]);
    expect([...r.accepted]).toEqual([[0, 'ndr32']]);
  });

  it('rule 5: other transfer syntaxes, and NDR with the wrong version, → 2/2', () => {
    const other = transferSyntax('01234567-89ab-cdef-0123-456789abcdef', 1);
    const ndr32v1 = transferSyntax(NDR32_SYNTAX.uuid, 1);
    expect(negotiate([kms(0, other), kms(1, ndr32v1), kms(2)], VLMCSD).results).toEqual([
      REJECT(2),
      REJECT(2),
      REJECT(2),
    ]);
  });

  it('several transfer syntaxes in one element: the first acceptable one', () => {
    const other = transferSyntax('01234567-89ab-cdef-0123-456789abcdef', 1);
    // NDR64 host: NDR32 is not acceptable because NDR64 is offered (in the same element).
    expect(negotiate([kms(0, other, ndr32, ndr64)], VLMCSD).results).toEqual([ACCEPT_64]);
    expect(negotiate([kms(0, other, ndr64, ndr32)], { ndr64: false, btfn: false }).results).toEqual([
      ACCEPT_32,
    ]);
    expect(negotiate([kms(0, ndr32, ndr64)], { ndr64: false, btfn: true }).results).toEqual([ACCEPT_32]);
  });

  it('a repeated context id: the last element decides', () => {
    const r = negotiate([kms(0, ndr32), kms(0, ndr64)], { ndr64: false, btfn: true });
    expect(r.results).toEqual([ACCEPT_32, REJECT(2)]);
    expect(r.accepted.size).toBe(0);
  });
});
