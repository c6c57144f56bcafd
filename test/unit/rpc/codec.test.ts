import { describe, expect, it } from 'vitest';
import { PTYPE } from '../../../src/rpc/constants.js';
import { decodeHeader, decodePdu, readHeader } from '../../../src/rpc/decode.js';
import { encodePdu, encodingLength } from '../../../src/rpc/encode.js';
import {
  type BindAckPdu,
  makeBindAck,
  makeBindNak,
  makeResponse,
  type RequestPdu,
} from '../../../src/rpc/pdu.js';
import { ProtocolError } from '../../../src/wire/errors.js';
import { fromHex, loadRpcVectors, toHex } from './captures.js';

const v = loadRpcVectors();
const bind = () => fromHex(v['bind_request_win8_style']!);
const ack = () => fromHex(v['bind_ack_ndr64_server']!);

function err(f: () => unknown): ProtocolError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return e as ProtocolError;
  }
  throw new Error('did not throw');
}

/** Writes a u16 LE into a copy, and fixes frag_length to the length unless told otherwise. */
function patch(b: Uint8Array, at: number, value: number, width: 1 | 2 = 1): Uint8Array {
  const c = b.slice();
  c[at] = value & 0xff;
  if (width === 2) c[at + 1] = value >> 8;
  return c;
}

describe('decodeHeader / decodePdu errors', () => {
  it('rpc_vers ≠ 5 → BAD_RPC_VERSION, but readHeader still reads it', () => {
    const b = patch(bind(), 0, 4);
    expect(err(() => decodePdu(b)).code).toBe('BAD_RPC_VERSION');
    expect(readHeader(b)).toMatchObject({ rpcVersion: 4, type: PTYPE.BIND, callId: 2, fragLength: 160 });
  });

  it('connectionless or unknown PTYPE → BAD_PTYPE', () => {
    for (const t of [1, 4, 5, 6, 7, 8, 9, 10, 20, 255]) {
      expect(err(() => decodeHeader(patch(bind(), 2, t))).code).toBe('BAD_PTYPE');
    }
  });

  it('big-endian drep → BAD_DREP; other drep bytes are kept', () => {
    expect(err(() => decodePdu(patch(bind(), 4, 0x00))).code).toBe('BAD_DREP');
    const odd = patch(bind(), 4, 0x11);
    expect(decodePdu(odd).drep).toEqual([0x11, 0, 0, 0]);
    expect(toHex(encodePdu(decodePdu(odd)))).toBe(toHex(odd));
  });

  it('frag_length < 16 or ≠ the bytes given → BAD_FRAG_LENGTH; < 16 bytes → SHORT_INPUT', () => {
    expect(err(() => decodePdu(patch(bind(), 8, 15, 2))).code).toBe('BAD_FRAG_LENGTH');
    expect(err(() => decodePdu(patch(bind(), 8, 161, 2))).code).toBe('BAD_FRAG_LENGTH');
    expect(err(() => decodePdu(bind().subarray(0, 100))).code).toBe('BAD_FRAG_LENGTH');
    const e = err(() => decodeHeader(bind().subarray(0, 10)));
    expect(e).toMatchObject({ code: 'SHORT_INPUT', field: 'header', needed: 16, available: 10 });
  });

  it('counts are bounded by the bytes present before use', () => {
    // n_context_elem 255 × at least 24 bytes
    expect(err(() => decodePdu(patch(bind(), 24, 255)))).toMatchObject({
      code: 'SHORT_INPUT',
      field: 'p_cont_elem',
      needed: 255 * 24,
      available: 132,
    });
    // n_transfer_syn of the first element 200 × 20 bytes
    expect(err(() => decodePdu(patch(bind(), 30, 200)))).toMatchObject({
      code: 'SHORT_INPUT',
      field: 'transfer_syntaxes',
    });
    // sec_addr.length 0xffff
    expect(err(() => decodePdu(patch(ack(), 24, 0xffff, 2)))).toMatchObject({
      code: 'SHORT_INPUT',
      field: 'sec_addr.port_spec',
    });
    // n_results 100
    expect(err(() => decodePdu(patch(ack(), 32, 100)))).toMatchObject({
      code: 'SHORT_INPUT',
      field: 'p_results',
    });
    // auth_length larger than the body
    expect(err(() => decodePdu(patch(bind(), 10, 200, 2)))).toMatchObject({
      code: 'SHORT_INPUT',
      field: 'auth_verifier',
      needed: 208,
      available: 144,
    });
  });

  it('a port string without its NUL → BAD_VALUE', () => {
    // "1688\0" → "16888": the length still says 5
    expect(err(() => decodePdu(patch(ack(), 30, 0x38))).code).toBe('BAD_VALUE');
  });

  it('auth_length > 0: the last auth_length + 8 bytes are the verifier, the stub stops before it', () => {
    const req = fromHex(v['request_v4_ndr32_ctx0_call3']!);
    const withAuth = patch(req, 10, 16, 2);
    const pdu = decodePdu(withAuth) as RequestPdu;
    expect(pdu.authVerifier?.length).toBe(24);
    expect(pdu.stub.length).toBe(req.length - 24 - 24);
    expect(toHex(encodePdu(pdu))).toBe(toHex(withAuth));
  });

  it('an object UUID (PFC_OBJECT_UUID) comes before the stub', () => {
    const req = decodePdu(fromHex(v['request_v4_ndr32_ctx0_call3']!)) as RequestPdu;
    const withObj = encodePdu({ ...req, objectUuid: '01234567-89ab-cdef-0123-456789abcdef' });
    expect(withObj[3]).toBe(0x83);
    expect(withObj.length).toBe(req.stub.length + 40);
    const back = decodePdu(withObj) as RequestPdu;
    expect(back.objectUuid).toBe('01234567-89ab-cdef-0123-456789abcdef');
    expect(toHex(back.stub)).toBe(toHex(req.stub));
    // and the encoder clears the flag when there is no object UUID
    expect(encodePdu({ ...req, flags: 0x83 })[3]).toBe(0x03);
  });
});

describe('decodePdu on a Node Buffer', () => {
  it('decodes, copies the small fields into plain Uint8Arrays and re-encodes exactly', () => {
    const hex = v['alter_context_resp_example_ndr64']!;
    const pdu = decodePdu(Buffer.from(hex, 'hex'));
    expect(toHex(encodePdu(pdu))).toBe(hex);
    const b = decodePdu(Buffer.from(v['bind_request_win8_style']!, 'hex'));
    if (b.type !== PTYPE.BIND) throw new Error('not a bind');
    expect(Buffer.isBuffer(b.contexts[0]!.transferSyntaxes[0]!.raw)).toBe(false);
  });
});

describe('encodePdu', () => {
  it('pads the port string to a 4-byte PDU offset with zeros, for any length', () => {
    for (let n = 0; n < 9; n++) {
      const addr = '1'.repeat(n);
      const b = encodePdu(
        makeBindAck(1, 3, {
          maxXmitFrag: 1,
          maxRecvFrag: 1,
          assocGroupId: 1,
          secondaryAddress: addr,
          results: [],
        }),
      );
      const l = n === 0 ? 0 : n + 1;
      const a = 26 + l + ((4 - ((26 + l) & 3)) & 3);
      expect(a % 4).toBe(0);
      expect(b.length).toBe(a + 4);
      expect(b.subarray(26 + l, a).every((x) => x === 0)).toBe(true);
      expect(decodePdu(b)).toMatchObject({ secondaryAddress: addr });
    }
  });

  it('bind_nak: reason, versions {5.0}, padded to 4', () => {
    const b = encodePdu(makeBindNak(9, 4));
    expect(toHex(b)).toBe('05000d031000000018000000090000000400010500000000');
  });

  it('rejects values that do not fit their field', () => {
    const base = decodePdu(ack()) as BindAckPdu;
    expect(err(() => encodePdu({ ...base, callId: 2 ** 32 })).code).toBe('BAD_VALUE');
    expect(err(() => encodePdu({ ...base, maxXmitFrag: -1 })).code).toBe('BAD_VALUE');
    expect(err(() => encodePdu({ ...base, secondaryAddress: 'π' })).code).toBe('BAD_VALUE');
    expect(err(() => encodePdu({ ...base, padding: Uint8Array.of(1, 2) })).code).toBe('BAD_VALUE');
    expect(err(() => encodePdu({ ...base, authVerifier: new Uint8Array(8) })).code).toBe('BAD_VALUE');
    expect(err(() => encodePdu(makeResponse(1, 0, new Uint8Array(70000)))).code).toBe('PDU_TOO_LARGE');
    expect(encodingLength(makeResponse(1, 0, new Uint8Array(70000)))).toBe(70024);
  });
});
