/** fast-check arbitraries for valid PDU objects of every type (src/rpc/pdu.ts). */
import fc from 'fast-check';
import { PFC, PTYPE } from '../../../src/rpc/constants.js';
import type {
  AlterContextPdu,
  AlterContextRespPdu,
  BindAckBody,
  BindAckPdu,
  BindBody,
  BindNakPdu,
  BindPdu,
  ContextResult,
  FaultPdu,
  GenericPdu,
  Pdu,
  PduCommon,
  PresentationContext,
  RequestPdu,
  ResponsePdu,
  TransferSyntax,
} from '../../../src/rpc/pdu.js';
import { guidFromBytes } from '../../../src/wire/guid.js';

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bytes = (maxLength: number, minLength = 0) => fc.uint8Array({ minLength, maxLength });
/** An optional extra that the decoder only reports when it is non-zero / non-empty. */
const extra = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const nonZero = (max: number) => fc.integer({ min: 1, max });

export const guidArb = bytes(16, 16).map((b) => guidFromBytes(b));

/** Drops undefined optionals so objects compare like decoded ones. */
function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export const commonArb: fc.Arbitrary<PduCommon> = fc
  .record({
    flags: u8,
    callId: u32,
    rpcVersionMinor: u8,
    drep: fc.tuple(fc.integer({ min: 0x10, max: 0x1f }), u8, u8, u8),
    authVerifier: extra(bytes(40, 9)),
  })
  .map(clean);

export const transferSyntaxArb: fc.Arbitrary<TransferSyntax> = fc
  .record({ raw: bytes(16, 16), version: u32 })
  .map(({ raw, version }) => ({ uuid: guidFromBytes(raw), version, raw }));

export const contextArb: fc.Arbitrary<PresentationContext> = fc
  .record({
    contextId: u16,
    abstractSyntax: fc.record({ uuid: guidArb, versionMajor: u16, versionMinor: u16 }),
    transferSyntaxes: fc.array(transferSyntaxArb, { maxLength: 4 }),
    reserved: extra(nonZero(0xff)),
  })
  .map(clean);

export const bindBodyArb: fc.Arbitrary<BindBody> = fc
  .record({
    maxXmitFrag: u16,
    maxRecvFrag: u16,
    assocGroupId: u32,
    contexts: fc.array(contextArb, { maxLength: 5 }),
    reserved: extra(nonZero(0xffffff)),
    trailing: extra(bytes(12, 1)),
  })
  .map(clean);

export const resultArb: fc.Arbitrary<ContextResult> = fc.record({
  result: u16,
  reason: u16,
  transferSyntax: fc.record({ uuid: guidArb, version: u32 }),
});

const latin1Char = fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c));

export const bindAckBodyArb: fc.Arbitrary<BindAckBody> = fc
  .record({
    maxXmitFrag: u16,
    maxRecvFrag: u16,
    assocGroupId: u32,
    secondaryAddress: fc.oneof(
      fc.constantFrom('', '1688', '17216', '135'),
      fc.string({ unit: latin1Char, maxLength: 12 }),
    ),
    results: fc.array(resultArb, { maxLength: 5 }),
    reserved: extra(nonZero(0xffffff)),
    trailing: extra(bytes(12, 1)),
  })
  .chain((b) => {
    const base = clean(b) as BindAckBody;
    const pad = (4 - ((26 + (b.secondaryAddress.length ? b.secondaryAddress.length + 1 : 0)) & 3)) & 3;
    if (pad === 0) return fc.constant(base);
    // Non-zero padding (as vlmcsd sends) or none.
    return extra(bytes(pad, pad).filter((p) => p.some((x) => x !== 0))).map((padding) =>
      clean({ ...base, padding }),
    );
  });

const bindNakBodyArb: fc.Arbitrary<Omit<BindNakPdu, keyof PduCommon | 'type'>> = fc
  .record({
    rejectReason: u16,
    versions: fc.array(fc.record({ major: u8, minor: u8 }), { maxLength: 4 }),
    trailing: extra(bytes(24)),
  })
  .filter((p) => {
    // A trailing part equal to the canonical padding is not reported back: leave those out.
    if (!p.trailing) return true;
    const pad = (4 - ((19 + 2 * p.versions.length) & 3)) & 3;
    return !(p.trailing.length === pad && p.trailing.every((b) => b === 0));
  })
  .map(clean);

const withCommon = <T extends object>(type: number, body: fc.Arbitrary<T>) =>
  fc.tuple(commonArb, body).map(([c, b]) => ({ type, ...c, ...b }));

export const bindArb = withCommon(PTYPE.BIND, bindBodyArb) as fc.Arbitrary<BindPdu>;
export const alterContextArb = withCommon(PTYPE.ALTER_CONTEXT, bindBodyArb) as fc.Arbitrary<AlterContextPdu>;
export const bindAckArb = withCommon(PTYPE.BIND_ACK, bindAckBodyArb) as fc.Arbitrary<BindAckPdu>;
export const alterContextRespArb = withCommon(
  PTYPE.ALTER_CONTEXT_RESP,
  bindAckBodyArb,
) as fc.Arbitrary<AlterContextRespPdu>;
export const bindNakArb = withCommon(PTYPE.BIND_NAK, bindNakBodyArb) as fc.Arbitrary<BindNakPdu>;

export const requestArb: fc.Arbitrary<RequestPdu> = fc
  .tuple(
    commonArb,
    fc.record({ allocHint: u32, contextId: u16, opnum: u16, objectUuid: extra(guidArb), stub: bytes(300) }),
  )
  .map(([c, b]) => {
    // The encoder derives PFC_OBJECT_UUID from objectUuid; generate consistent flags.
    const flags = b.objectUuid !== undefined ? c.flags | PFC.OBJECT_UUID : c.flags & ~PFC.OBJECT_UUID;
    return clean({ type: PTYPE.REQUEST, ...c, ...b, flags }) as RequestPdu;
  });

export const responseArb = withCommon(
  PTYPE.RESPONSE,
  fc
    .record({
      allocHint: u32,
      contextId: u16,
      cancelCount: u8,
      stub: bytes(300),
      reserved: extra(nonZero(0xff)),
    })
    .map(clean),
) as fc.Arbitrary<ResponsePdu>;

export const faultArb = withCommon(
  PTYPE.FAULT,
  fc
    .record({
      allocHint: u32,
      contextId: u16,
      cancelCount: u8,
      status: u32,
      reserved: extra(nonZero(0xff)),
      reserved2: extra(nonZero(0xffffffff)),
      trailing: extra(bytes(32, 1)),
    })
    .map(clean),
) as fc.Arbitrary<FaultPdu>;

export const genericArb = fc
  .tuple(fc.constantFrom(PTYPE.AUTH3, PTYPE.SHUTDOWN, PTYPE.CO_CANCEL, PTYPE.ORPHANED), commonArb, bytes(64))
  .map(([type, c, body]) => ({ type, ...c, body }) as GenericPdu);

export const pduArbs: Record<string, fc.Arbitrary<Pdu>> = {
  bind: bindArb,
  alter_context: alterContextArb,
  bind_ack: bindAckArb,
  alter_context_resp: alterContextRespArb,
  bind_nak: bindNakArb,
  request: requestArb,
  response: responseArb,
  fault: faultArb,
  generic: genericArb,
};

export const anyPduArb: fc.Arbitrary<Pdu> = fc.oneof(...Object.values(pduArbs));
