/**
 * Differential test: an independent reading of the common header and the bind body, declared with
 * npm `binary-parser`, must agree with decodeHeader / decodePdu on every field.
 */
import { Parser } from 'binary-parser';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PTYPE } from '../../../src/rpc/constants.js';
import { decodePdu, readHeader } from '../../../src/rpc/decode.js';
import { encodePdu } from '../../../src/rpc/encode.js';
import type { AlterContextPdu, BindPdu } from '../../../src/rpc/pdu.js';
import {
  allCapturedPdus,
  badCaptures,
  conversationCaptures,
  fromHex,
  loadRpcVectors,
} from '../../unit/rpc/captures.js';
import { alterContextArb, bindArb } from './arbitraries.js';

const headerParser = new Parser()
  .endianness('little')
  .uint8('rpcVers')
  .uint8('rpcVersMinor')
  .uint8('ptype')
  .uint8('pfcFlags')
  .array('drep', { type: 'uint8', length: 4 })
  .uint16('fragLength')
  .uint16('authLength')
  .uint32('callId');

const syntaxParser = new Parser().endianness('little').buffer('uuid', { length: 16 }).uint32('version');

const contextParser = new Parser()
  .endianness('little')
  .uint16('contextId')
  .uint8('nTransferSyn')
  .uint8('reserved')
  .buffer('abstractUuid', { length: 16 })
  .uint16('abstractMajor')
  .uint16('abstractMinor')
  .array('transferSyntaxes', { type: syntaxParser, length: 'nTransferSyn' });

const bindParser = new Parser()
  .endianness('little')
  .nest('header', { type: headerParser })
  .uint16('maxXmitFrag')
  .uint16('maxRecvFrag')
  .uint32('assocGroupId')
  .uint8('nContextElem')
  .uint8('reserved')
  .uint16('reserved2')
  .array('contexts', { type: contextParser, length: 'nContextElem' });

interface BpHeader {
  rpcVers: number;
  rpcVersMinor: number;
  ptype: number;
  pfcFlags: number;
  drep: number[];
  fragLength: number;
  authLength: number;
  callId: number;
}
interface BpSyntax {
  uuid: Buffer;
  version: number;
}
interface BpContext {
  contextId: number;
  nTransferSyn: number;
  reserved: number;
  abstractUuid: Buffer;
  abstractMajor: number;
  abstractMinor: number;
  transferSyntaxes: BpSyntax[];
}
interface BpBind {
  header: BpHeader;
  maxXmitFrag: number;
  maxRecvFrag: number;
  assocGroupId: number;
  nContextElem: number;
  reserved: number;
  reserved2: number;
  contexts: BpContext[];
}

/** GUID text from wire bytes, written here independently of src/wire/guid.ts. */
function guidText(b: Uint8Array): string {
  const dv = new DataView(b.buffer, b.byteOffset, 16);
  const h = (v: number, n: number) => v.toString(16).padStart(n, '0');
  const tail = Array.from(b.subarray(8, 16), (x) => h(x, 2)).join('');
  return `${h(dv.getUint32(0, true), 8)}-${h(dv.getUint16(4, true), 4)}-${h(dv.getUint16(6, true), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`;
}

function compareHeader(bytes: Uint8Array): void {
  const theirs = headerParser.parse(Buffer.from(bytes)) as unknown as BpHeader;
  const ours = readHeader(bytes);
  expect(ours).toEqual({
    rpcVersion: theirs.rpcVers,
    rpcVersionMinor: theirs.rpcVersMinor,
    type: theirs.ptype,
    flags: theirs.pfcFlags,
    drep: theirs.drep,
    fragLength: theirs.fragLength,
    authLength: theirs.authLength,
    callId: theirs.callId,
  });
}

function compareBind(bytes: Uint8Array): void {
  compareHeader(bytes);
  const theirs = bindParser.parse(Buffer.from(bytes)) as unknown as BpBind;
  const ours = decodePdu(bytes) as BindPdu | AlterContextPdu;
  expect([PTYPE.BIND, PTYPE.ALTER_CONTEXT]).toContain(ours.type);
  expect({
    maxXmitFrag: ours.maxXmitFrag,
    maxRecvFrag: ours.maxRecvFrag,
    assocGroupId: ours.assocGroupId,
    reserved: ours.reserved ?? 0,
    contexts: ours.contexts.map((c) => ({
      contextId: c.contextId,
      reserved: c.reserved ?? 0,
      abstract: [c.abstractSyntax.uuid, c.abstractSyntax.versionMajor, c.abstractSyntax.versionMinor],
      transfer: c.transferSyntaxes.map((t) => [t.uuid, t.version, Buffer.from(t.raw).toString('hex')]),
    })),
  }).toEqual({
    maxXmitFrag: theirs.maxXmitFrag,
    maxRecvFrag: theirs.maxRecvFrag,
    assocGroupId: theirs.assocGroupId,
    reserved: theirs.reserved | (theirs.reserved2 << 8),
    contexts: theirs.contexts.map((c) => ({
      contextId: c.contextId,
      reserved: c.reserved,
      abstract: [guidText(c.abstractUuid), c.abstractMajor, c.abstractMinor],
      transfer: c.transferSyntaxes.map((t) => [guidText(t.uuid), t.version, t.uuid.toString('hex')]),
    })),
  });
  expect(theirs.nContextElem).toBe(ours.contexts.length);
}

describe('binary-parser and decodePdu agree', () => {
  const captured = allCapturedPdus([...conversationCaptures(), ...badCaptures()]).map((p) => fromHex(p.hex));
  const binds = [...captured, ...Object.values(loadRpcVectors()).map(fromHex)].filter((b) => {
    if (b[2] !== PTYPE.BIND && b[2] !== PTYPE.ALTER_CONTEXT) return false;
    try {
      decodePdu(b);
      return true;
    } catch {
      return false; // bad-* binds that are meant not to decode
    }
  });

  it('on every captured header', () => {
    for (const b of captured) if (b.length >= 16) compareHeader(b);
  });

  it('on every captured bind / alter_context', () => {
    expect(binds.length).toBeGreaterThan(40);
    for (const b of binds) compareBind(b);
  });

  it('on arbitrary headers', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => compareHeader(b)),
      { numRuns: 500 },
    );
  });

  it('on generated bind and alter_context PDUs', () => {
    const noAuth = fc.oneof(bindArb, alterContextArb).map((p) => {
      const { authVerifier: _a, trailing: _t, ...rest } = p;
      return rest as BindPdu | AlterContextPdu;
    });
    fc.assert(
      fc.property(noAuth, (p) => compareBind(encodePdu(p))),
      { numRuns: 300 },
    );
  });
});
