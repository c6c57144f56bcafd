import { describe, expect, it } from 'vitest';
import { PFC, PTYPE } from '../../../src/rpc/constants.js';
import { decodePdu } from '../../../src/rpc/decode.js';
import { encodePdu } from '../../../src/rpc/encode.js';
import { CallAssembler, Framer } from '../../../src/rpc/framer.js';
import type { RequestPdu } from '../../../src/rpc/pdu.js';
import { ProtocolError } from '../../../src/wire/errors.js';
import { concatBytes, conversationCaptures, pdusOf, toHex } from './captures.js';

const capture = conversationCaptures().find((c) => c.name === 'v6-win10')!;
const c2s = pdusOf(capture, 0, 'c2s'); // bind 160, alter_context 72, request 292

function caught(f: () => unknown): ProtocolError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return e as ProtocolError;
  }
  throw new Error('did not throw');
}

function header(frag: number, ptype = PTYPE.BIND): Uint8Array {
  const h = Uint8Array.of(5, 0, ptype, 3, 0x10, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0);
  h[8] = frag & 0xff;
  h[9] = frag >> 8;
  return h;
}

describe('Framer', () => {
  it('returns PDUs lying inside one chunk as subarrays of it (no copy)', () => {
    const stream = concatBytes(c2s);
    const f = new Framer({ maxPduSize: 5840 });
    const out = f.push(stream);
    expect(out.map((b) => b.length)).toEqual([160, 72, 292]);
    for (const b of out) expect(b.buffer).toBe(stream.buffer);
    expect(f.pendingBytes).toBe(0);
  });

  it('copies only a PDU that spans chunks, and keeps the rest pending', () => {
    const stream = concatBytes(c2s);
    const f = new Framer({ maxPduSize: 5840 });
    const a = stream.subarray(0, 100);
    const b = stream.subarray(100, 300);
    expect(f.push(a)).toEqual([]);
    expect(f.pendingBytes).toBe(100);
    const out = f.push(b);
    expect(out.map((x) => x.length)).toEqual([160, 72 /* 160..232 lies in chunk b */]);
    expect(out[0]!.buffer).not.toBe(stream.buffer);
    expect(toHex(out[0]!)).toBe(toHex(c2s[0]!));
    expect(out[1]!.buffer).toBe(stream.buffer); // lay inside chunk b: a view
    expect(f.pendingBytes).toBe(300 - 232);
    expect(f.push(stream.subarray(300)).map(toHex)).toEqual([toHex(c2s[2]!)]);
    expect(f.pendingBytes).toBe(0);
  });

  it('keeps a copy of the header it refused, for an answer that echoes it', () => {
    const f = new Framer({ maxPduSize: 5840 });
    expect(f.push(concatBytes(c2s)).length).toBe(3);
    expect(f.refusedHeader).toBeNull();
    const bad = header(0xffff);
    expect(caught(() => f.push(bad)).code).toBe('PDU_TOO_LARGE');
    expect(toHex(f.refusedHeader!)).toBe(toHex(bad.subarray(0, 16)));
    expect(f.refusedHeader!.buffer).not.toBe(bad.buffer);
  });

  it('validates the header as soon as 16 bytes are in, before the body', () => {
    const f = new Framer({ maxPduSize: 5840 });
    expect(f.push(header(0xffff).subarray(0, 15))).toEqual([]);
    expect(caught(() => f.push(header(0xffff).subarray(15))).code).toBe('PDU_TOO_LARGE');
    expect(caught(() => new Framer({ maxPduSize: 5840 }).push(header(15))).code).toBe('BAD_FRAG_LENGTH');
    expect(caught(() => new Framer({ maxPduSize: 5840 }).push(header(0))).code).toBe('BAD_FRAG_LENGTH');
  });

  it('runs checkHeader once per PDU header', () => {
    const seen: number[] = [];
    const f = new Framer({ maxPduSize: 5840, checkHeader: (h) => seen.push(h[2]!) });
    const stream = concatBytes(c2s);
    for (const byte of stream) f.push(Uint8Array.of(byte));
    expect(seen).toEqual([PTYPE.BIND, PTYPE.ALTER_CONTEXT, PTYPE.REQUEST]);
  });

  it('errors are sticky; PDUs cut before a bad header are returned first', () => {
    const f = new Framer({ maxPduSize: 5840 });
    const out = f.push(concatBytes([c2s[0]!, header(3)]));
    expect(out.length).toBe(1);
    expect(f.error?.code).toBe('BAD_FRAG_LENGTH');
    expect(caught(() => f.push(c2s[1]!)).code).toBe('BAD_FRAG_LENGTH');
  });

  it('ignores empty chunks', () => {
    const f = new Framer({ maxPduSize: 5840 });
    expect(f.push(new Uint8Array(0))).toEqual([]);
    expect(f.pendingBytes).toBe(0);
  });
});

describe('CallAssembler', () => {
  const request = decodePdu(c2s[2]!) as RequestPdu;
  const frag = (
    flags: number,
    stub: Uint8Array,
    callId = 7,
    extra: Partial<RequestPdu> = {},
  ): RequestPdu => ({
    ...request,
    callId,
    flags,
    stub,
    allocHint: stub.length,
    ...extra,
  });
  const F = PFC.FIRST_FRAG;
  const L = PFC.LAST_FRAG;

  it('passes a single-fragment request through unchanged', () => {
    const a = new CallAssembler({ maxCallSize: 65536 });
    expect(a.add(request)).toBe(request);
  });

  it('concatenates FIRST..LAST; the first fragment’s context and opnum apply', () => {
    const a = new CallAssembler({ maxCallSize: 65536 });
    const s = request.stub;
    expect(a.add(frag(F, s.subarray(0, 100), 7, { contextId: 1, opnum: 0 }))).toBeNull();
    expect(a.add(frag(0, s.subarray(100, 200), 7, { contextId: 9, opnum: 5 }))).toBeNull();
    expect(a.pendingCalls).toBe(1);
    expect(a.pendingBytes).toBe(200);
    const whole = a.add(frag(L, s.subarray(200), 7, { contextId: 9, opnum: 5 }))!;
    expect(whole).not.toBeNull();
    expect(toHex(whole.stub)).toBe(toHex(s));
    expect(whole).toMatchObject({ callId: 7, contextId: 1, opnum: 0, flags: F | L, allocHint: s.length });
    expect(a.pendingCalls).toBe(0);
    expect(a.pendingBytes).toBe(0);
  });

  it('interleaved calls are kept apart', () => {
    const a = new CallAssembler({ maxCallSize: 65536 });
    expect(a.add(frag(F, Uint8Array.of(1), 1))).toBeNull();
    expect(a.add(frag(F, Uint8Array.of(2), 2))).toBeNull();
    expect([...a.add(frag(L, Uint8Array.of(3), 1))!.stub]).toEqual([1, 3]);
    expect([...a.add(frag(L, Uint8Array.of(4), 2))!.stub]).toEqual([2, 4]);
  });

  it('a continuation without a first fragment, or a second first fragment, is BAD_FRAGMENT', () => {
    const a = new CallAssembler({ maxCallSize: 65536 });
    expect(caught(() => a.add(frag(L, Uint8Array.of(1)))).code).toBe('BAD_FRAGMENT');
    expect(caught(() => a.add(frag(0, Uint8Array.of(1)))).code).toBe('BAD_FRAGMENT');
    a.add(frag(F, Uint8Array.of(1)));
    expect(caught(() => a.add(frag(F, Uint8Array.of(1)))).code).toBe('BAD_FRAGMENT');
  });

  it('a call over the cap is PDU_TOO_LARGE, also when spread over fragments or calls', () => {
    const a = new CallAssembler({ maxCallSize: 100 });
    expect(caught(() => a.add(frag(F | L, new Uint8Array(101)))).code).toBe('PDU_TOO_LARGE');
    a.add(frag(F, new Uint8Array(60)));
    expect(caught(() => a.add(frag(L, new Uint8Array(41)))).code).toBe('PDU_TOO_LARGE');
    expect(a.pendingCalls).toBe(0); // the offending call is dropped
    a.add(frag(F, new Uint8Array(60), 1));
    expect(caught(() => a.add(frag(F, new Uint8Array(60), 2))).code).toBe('PDU_TOO_LARGE');
  });

  it('caps the number of calls being reassembled', () => {
    const a = new CallAssembler({ maxCallSize: 100, maxPendingCalls: 2 });
    a.add(frag(F, new Uint8Array(0), 1));
    a.add(frag(F, new Uint8Array(0), 2));
    expect(caught(() => a.add(frag(F, new Uint8Array(0), 3))).code).toBe('PDU_TOO_LARGE');
  });

  it('cancel drops a call being reassembled', () => {
    const a = new CallAssembler({ maxCallSize: 65536 });
    a.add(frag(F, Uint8Array.of(1)));
    expect(a.cancel(7)).toBe(true);
    expect(a.cancel(7)).toBe(false);
    expect(caught(() => a.add(frag(L, Uint8Array.of(1)))).code).toBe('BAD_FRAGMENT');
  });

  it('a reassembled request re-encodes as one valid PDU', () => {
    const a = new CallAssembler({ maxCallSize: 65536 });
    a.add(frag(F, request.stub.subarray(0, 10)));
    const whole = a.add(frag(L, request.stub.subarray(10)))!;
    const bytes = encodePdu({ ...whole, callId: request.callId });
    expect(toHex(bytes)).toBe(toHex(c2s[2]!));
  });
});
