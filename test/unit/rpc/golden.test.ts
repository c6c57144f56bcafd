import { describe, expect, it } from 'vitest';
import {
  CONTEXT_RESULT,
  NCA_STATUS,
  NDR32_SYNTAX,
  NDR64_SYNTAX,
  NULL_SYNTAX,
  PTYPE,
  ptypeName,
} from '../../../src/rpc/constants.js';
import { decodeHeader, decodePdu } from '../../../src/rpc/decode.js';
import { encodePdu, encodingLength } from '../../../src/rpc/encode.js';
import { negotiate } from '../../../src/rpc/negotiate.js';
import {
  makeAlterContextResp,
  makeBindAck,
  makeFault,
  makeResponse,
  type Pdu,
  type PduHeader,
} from '../../../src/rpc/pdu.js';
import {
  type Annotation,
  allCapturedPdus,
  conversationCaptures,
  fromHex,
  loadRpcVectors,
  toHex,
} from './captures.js';

/** Checks every field of a capture's `rpc` annotation this layer knows against the decoded PDU. */
function checkAnnotation(h: PduHeader, pdu: Pdu, rpc: Annotation): void {
  const hex8 = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
  const hex32 = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
  const expected: Record<string, unknown> = {
    rpc_vers: h.rpcVersion,
    rpc_vers_minor: h.rpcVersionMinor,
    ptype: h.type,
    ptype_name: ptypeName(h.type),
    pfc_flags: hex8(h.flags),
    drep: toHex(Uint8Array.from(h.drep)),
    frag_length: h.fragLength,
    auth_length: h.authLength,
    call_id: h.callId,
  };
  switch (pdu.type) {
    case PTYPE.BIND:
    case PTYPE.ALTER_CONTEXT:
      Object.assign(expected, {
        max_xmit_frag: pdu.maxXmitFrag,
        max_recv_frag: pdu.maxRecvFrag,
        assoc_group: pdu.assocGroupId,
        contexts: pdu.contexts.map((c) => ({
          ctx_id: c.contextId,
          abstract: { uuid: c.abstractSyntax.uuid, version: c.abstractSyntax.versionMajor },
          transfer: c.transferSyntaxes.map((t) => ({ uuid: t.uuid, version: t.version })),
        })),
      });
      break;
    case PTYPE.BIND_ACK:
    case PTYPE.ALTER_CONTEXT_RESP:
      Object.assign(expected, {
        max_xmit_frag: pdu.maxXmitFrag,
        max_recv_frag: pdu.maxRecvFrag,
        assoc_group: pdu.assocGroupId,
        sec_addr: pdu.secondaryAddress,
        results: pdu.results.map((r) => ({
          result: r.result,
          reason: r.reason,
          transfer: { uuid: r.transferSyntax.uuid, version: r.transferSyntax.version },
        })),
      });
      break;
    case PTYPE.REQUEST:
      Object.assign(expected, {
        alloc_hint: pdu.allocHint,
        ctx_id: pdu.contextId,
        opnum: pdu.opnum,
        stub_offset: pdu.objectUuid ? 40 : 24,
        stub_length: pdu.stub.length,
      });
      break;
    case PTYPE.RESPONSE:
      Object.assign(expected, {
        alloc_hint: pdu.allocHint,
        ctx_id: pdu.contextId,
        cancel_count: pdu.cancelCount,
        stub_offset: 24,
        stub_length: pdu.stub.length,
      });
      break;
    case PTYPE.FAULT:
      Object.assign(expected, {
        alloc_hint: pdu.allocHint,
        ctx_id: pdu.contextId,
        cancel_count: pdu.cancelCount,
        status: hex32(pdu.status),
      });
      break;
  }
  // Names in the annotation are the annotator's; drop them and compare the rest.
  const strip = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(strip)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .filter(([k]) => k !== 'name')
              .map(([k, x]) => [k, strip(x)]),
          )
        : v;
  // `kms` (the stub's NDR content) and `syntax` (the context's negotiated syntax) belong to other
  // layers / the association test.
  const known = Object.keys(rpc).filter((k) => k !== 'kms' && k !== 'syntax');
  const unknown = known.filter((k) => !(k in expected));
  expect(unknown, 'annotation keys this test does not check').toEqual([]);
  const actual = Object.fromEntries(known.map((k) => [k, expected[k]]));
  expect(actual).toEqual(Object.fromEntries(known.map((k) => [k, strip(rpc[k])])));
}

describe('golden: vlmcsd conversation captures (v4/v5/v6/err)', () => {
  const pdus = allCapturedPdus(conversationCaptures());

  it('has the captures', () => {
    expect(pdus.length).toBeGreaterThan(100);
  });

  it.each(pdus.map((p) => [p.label, p] as const))(
    '%s decodes, matches its annotation, re-encodes',
    (_, p) => {
      const bytes = fromHex(p.hex);
      const h = decodeHeader(bytes);
      const pdu = decodePdu(bytes);
      expect(pdu.type).toBe(h.type);
      if (p.rpc) checkAnnotation(h, pdu, p.rpc);
      expect(encodingLength(pdu)).toBe(bytes.length);
      expect(toHex(encodePdu(pdu))).toBe(p.hex);
    },
  );

  it('keeps the uninitialised alter_context_resp pad bytes vlmcsd sends so re-encoding is exact', () => {
    const p = pdus.find((x) => x.rpc?.['ptype'] === PTYPE.ALTER_CONTEXT_RESP)!;
    const pdu = decodePdu(fromHex(p.hex));
    expect(pdu.type).toBe(PTYPE.ALTER_CONTEXT_RESP);
    if (pdu.type !== PTYPE.ALTER_CONTEXT_RESP) return;
    expect(pdu.padding).toBeDefined(); // "17": left over from the port string of the bind_ack
    const { padding: _, ...clean } = pdu;
    const canonical = encodePdu(clean);
    expect(canonical.length).toBe(56);
    expect(toHex(canonical.subarray(26, 28))).toBe('0000');
  });
});

describe('golden: rpc section of kms-test-vectors.json', () => {
  const v = loadRpcVectors();
  const names = Object.keys(v);

  it.each(names)('%s decodes and re-encodes byte-exactly', (name) => {
    const hex = v[name]!;
    const pdu = decodePdu(fromHex(hex));
    expect(toHex(encodePdu(pdu))).toBe(hex);
    // No vector carries garbage: all reserved/pad bytes are zero.
    expect(pdu).not.toHaveProperty('padding');
    expect(pdu).not.toHaveProperty('reserved');
  });

  it('covers the PDUs the brief lists', () => {
    for (const n of [
      'bind_request_win8_style',
      'bind_ack_ndr64_server',
      'bind_ack_ndr32_only_server',
      'alter_context_resp_example_ndr64',
      'request_v4_ndr32_ctx0_call3',
      'response_v4_ndr32_ctx0_call3',
      'request_v4_ndr64_ctx1_call3',
      'response_v4_ndr64_ctx1_call3',
      'response_error_C004F042_ndr32',
      'response_error_C004F042_ndr64',
      'fault_unknown_context_nca_s_unk_if',
    ]) {
      expect(names).toContain(n);
    }
  });

  it('bind_request_win8_style: ctx 0 NDR32, ctx 1 NDR64, ctx 2 BTFN bitmask 3', () => {
    const pdu = decodePdu(fromHex(v['bind_request_win8_style']!));
    expect(pdu.type).toBe(PTYPE.BIND);
    if (pdu.type !== PTYPE.BIND) return;
    expect(pdu).toMatchObject({
      flags: 0x03,
      callId: 2,
      maxXmitFrag: 5840,
      maxRecvFrag: 5840,
      assocGroupId: 0,
    });
    expect(pdu.contexts.map((c) => [c.contextId, c.transferSyntaxes.map((t) => t.uuid)])).toEqual([
      [0, [NDR32_SYNTAX.uuid]],
      [1, [NDR64_SYNTAX.uuid]],
      [2, ['6cb71c2c-9812-4540-0300-000000000000']],
    ]);
  });

  it('our builders reproduce the server-side vectors byte for byte', () => {
    const bind = decodePdu(fromHex(v['bind_request_win8_style']!));
    if (bind.type !== PTYPE.BIND) throw new Error('not a bind');
    const body = (ndr64: boolean) => ({
      maxXmitFrag: 5840,
      maxRecvFrag: 5840,
      assocGroupId: 0x12345678,
      secondaryAddress: '1688',
      results: negotiate(bind.contexts, { ndr64, btfn: true }).results,
    });
    expect(toHex(encodePdu(makeBindAck(2, 0x03, body(true))))).toBe(v['bind_ack_ndr64_server']);
    expect(toHex(encodePdu(makeBindAck(2, 0x03, body(false))))).toBe(v['bind_ack_ndr32_only_server']);
    expect(toHex(encodePdu(makeAlterContextResp(2, 0x03, { ...body(true), secondaryAddress: '' })))).toBe(
      v['alter_context_resp_example_ndr64'],
    );
    expect(toHex(encodePdu(makeFault(3, 0, NCA_STATUS.UNK_IF)))).toBe(
      v['fault_unknown_context_nca_s_unk_if'],
    );
    for (const name of [
      'response_v4_ndr32_ctx0_call3',
      'response_v4_ndr64_ctx1_call3',
      'response_error_C004F042_ndr32',
      'response_error_C004F042_ndr64',
    ]) {
      const r = decodePdu(fromHex(v[name]!));
      if (r.type !== PTYPE.RESPONSE) throw new Error(`${name} is not a response`);
      expect(r.allocHint).toBe(r.stub.length);
      expect(toHex(encodePdu(makeResponse(r.callId, r.contextId, r.stub)))).toBe(v[name]);
    }
  });

  it('bind_ack_ndr64_server: 108 bytes, sec addr "1688", 1 zero pad byte, results 2/2, 0/0 NDR64, 3/3', () => {
    const pdu = decodePdu(fromHex(v['bind_ack_ndr64_server']!));
    if (pdu.type !== PTYPE.BIND_ACK) throw new Error('not a bind_ack');
    expect(pdu.secondaryAddress).toBe('1688');
    expect(pdu.results).toEqual([
      { result: CONTEXT_RESULT.PROVIDER_REJECTION, reason: 2, transferSyntax: { ...NULL_SYNTAX } },
      { result: CONTEXT_RESULT.ACCEPTANCE, reason: 0, transferSyntax: { ...NDR64_SYNTAX } },
      { result: CONTEXT_RESULT.NEGOTIATE_ACK, reason: 3, transferSyntax: { ...NULL_SYNTAX } },
    ]);
  });
});
