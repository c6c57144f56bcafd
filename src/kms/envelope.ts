import { cbcDecryptRegion, cbcEncryptRegion } from '../crypto/aes.js';
import { V5_SCHEDULE, V6_SCHEDULE } from '../crypto/keys.js';
import { v4Mac } from '../crypto/v4-mac.js';
import { sha256Into, v6HmacInto } from '../crypto/v6-hmac.js';
import { equalAt, u16le } from '../wire/bytes.js';
import { ProtocolError } from '../wire/errors.js';
import { Writer } from '../wire/writer.js';
import {
  BASE_REQUEST_SIZE,
  decodeRequestBody,
  responseBodyLength,
  writeResponseBody,
  writeResponseBodyAt,
} from './body.js';
import type { DecodedRequest, KmsResponseBody, KmsVersion, NdrSyntax } from './messages.js';
import { responseStubLength, wrapResponseStub, writeResponseStubHead } from './stub.js';

/**
 * KMS message envelopes V4, V5 and V6 (spec c, d), both directions. Pure functions: the caller
 * supplies random bytes, so a seeded generator gives byte-identical answers.
 */

const V4_REQUEST_SIZE = BASE_REQUEST_SIZE + 16; // 252
const V5_REQUEST_SIZE = 4 + 16 + 240; // 260, V6 the same
const ZERO_IV = new Uint8Array(16);
const PAD4 = 0x04;
/** decodeRequest's V5/V6 plaintext (256 bytes), reused: decoding is synchronous and keeps no view of it. */
const PLAIN = new Uint8Array(V5_REQUEST_SIZE - 4);

type RandomBytes = (n: number) => Uint8Array;

function versionOf(message: Uint8Array): { minor: number; major: number } {
  if (message.length < 4) {
    throw new ProtocolError('BAD_MESSAGE', `KMS message of ${message.length} bytes has no version`, {
      field: 'Version',
      needed: 4,
      available: message.length,
    });
  }
  return { minor: u16le(message, 0), major: u16le(message, 2) };
}

/** Spec c.0: dispatch on MajorVer; MinorVer must be 0. */
export function messageVersion(message: Uint8Array): KmsVersion {
  const { minor, major } = versionOf(message);
  if (minor !== 0 || (major !== 4 && major !== 5 && major !== 6)) {
    throw new ProtocolError('UNSUPPORTED_VERSION', `KMS protocol ${major}.${minor} is not supported`, {
      field: 'Version',
    });
  }
  return major;
}

function short(message: Uint8Array, need: number, what: string): never {
  throw new ProtocolError('BAD_MESSAGE', `${what} needs ${need} bytes, got ${message.length}`, {
    field: what,
    needed: need,
    available: message.length,
  });
}

// ---------------------------------------------------------------------------------------------
// Host side

export interface DecodeRequestOptions {
  /** Accept a bad V4 MAC or a bad V5/V6 pad instead of throwing (spec f.8 "lenient mode"). */
  lenient?: boolean;
}

/**
 * Decodes and checks a request message (spec c.3, c.4). Longer messages are accepted and the excess
 * ignored, as genuine hosts do for buggy clients (spec b.1).
 */
export function decodeRequest(message: Uint8Array, opts: DecodeRequestOptions = {}): DecodedRequest {
  const version = messageVersion(message);
  if (version === 4) {
    if (message.length < V4_REQUEST_SIZE) short(message, V4_REQUEST_SIZE, 'V4 request');
    const base = message.subarray(0, BASE_REQUEST_SIZE);
    const mac = v4Mac(base);
    const integrityOk = equalAt(mac, 0, message, BASE_REQUEST_SIZE, 16);
    if (!integrityOk && !opts.lenient) throw new ProtocolError('BAD_MAC', 'V4 request MAC does not match');
    return { version, body: decodeRequestBody(base), q: null, iv: null, integrityOk };
  }
  if (message.length < V5_REQUEST_SIZE) short(message, V5_REQUEST_SIZE, `V${version} request`);
  const schedule = version === 5 ? V5_SCHEDULE : V6_SCHEDULE;
  // Zero-IV view (spec c.4): plaintext = Q ‖ BaseRequest ‖ 04 04 04 04. Decrypted into a reused
  // buffer: nothing returned refers to it (the body is decoded into values, Q is copied).
  const plain = PLAIN;
  cbcDecryptRegion(schedule, ZERO_IV, 0, message, 4, V5_REQUEST_SIZE - 4, plain, 0);
  const integrityOk =
    plain[252] === PAD4 && plain[253] === PAD4 && plain[254] === PAD4 && plain[255] === PAD4;
  if (!integrityOk && !opts.lenient) {
    throw new ProtocolError('BAD_PADDING', `V${version} request does not decrypt to a 04 04 04 04 pad`);
  }
  const body = decodeRequestBody(plain, 16);
  if (body.majorVersion !== version || body.minorVersion !== 0) {
    // The encrypted copy of the version must agree with the clear one.
    if (!opts.lenient) {
      throw new ProtocolError('BAD_MESSAGE', 'encrypted version differs from the clear version', {
        field: 'Version',
      });
    }
  }
  return {
    version,
    body,
    q: plain.slice(0, 16),
    iv: Uint8Array.prototype.slice.call(message, 4, 20),
    integrityOk,
  };
}

export interface EncodeResponseOptions {
  /**
   * 16 fresh bytes per call for Rand2 (V5, V6) and R (V6). The encoder is done with each array before
   * it asks for the next, so the source may return the same buffer every time.
   */
  random: RandomBytes;
  /** V6 host hardware id, 8 bytes (spec e.3). */
  hwid: Uint8Array;
}

export function encodeResponse(
  req: DecodedRequest,
  body: KmsResponseBody,
  opts: EncodeResponseOptions,
): Uint8Array {
  if (req.version === 4) return encodeV4Response(body);
  return encodeV56Response(req.version, req.q!, body, opts, null);
}

/**
 * `wrapResponseStub(encodeResponse(req, body, opts), syntax)` (HRESULT 0), built in one buffer for V5
 * and V6: the message is encrypted where the stub carries it (the host's per-request path).
 */
export function encodeResponseStub(
  req: DecodedRequest,
  body: KmsResponseBody,
  opts: EncodeResponseOptions,
  syntax: NdrSyntax,
): Uint8Array {
  if (req.version === 4) return wrapResponseStub(encodeV4Response(body), syntax);
  return encodeV56Response(req.version, req.q!, body, opts, syntax);
}

function encodeV4Response(body: KmsResponseBody): Uint8Array {
  const n = responseBodyLength(body.epid);
  const w = new Writer(n + 16);
  writeResponseBody(w, body);
  return w.raw(v4Mac(w.bytes.subarray(0, n))).finish();
}

/**
 * The V5/V6 response (spec c.5, c.6), the only encoder of it, in one buffer: the plaintext is written
 * where its ciphertext goes (after the 4 version bytes, inside the NDR stub when `stub` names a syntax),
 * padded and encrypted in place, so there is one allocation and no copy. Random values are drawn in a
 * fixed order (V6: R, then Rand2; V5: Rand2), so a seeded generator gives byte-identical answers.
 */
function encodeV56Response(
  version: 5 | 6,
  q: Uint8Array,
  body: KmsResponseBody,
  opts: EncodeResponseOptions,
  stub: NdrSyntax | null,
): Uint8Array {
  if (q.length !== 16) throw new RangeError(`Q must be 16 bytes, got ${q.length}`);
  if (version === 6 && opts.hwid.length !== 8) throw new RangeError('HwId must be 8 bytes');
  // First block: Q for V5 (so the wire IV equals the request's), fresh R for V6.
  const r = version === 5 ? q : random16(opts);
  const bodyLen = responseBodyLength(body.epid);
  const plainLen = version === 5 ? 16 + bodyLen + 48 : 16 + bodyLen + 48 + 8 + 16 + 16;
  const padded = plainLen + (16 - (plainLen % 16));
  const msgLen = 4 + padded;
  // The message goes at `m`: 0 on its own, after the NDR header inside a stub (spec b.2; the pad after
  // it is 0 since msgLen is a multiple of 4, then HRESULT 0, so only the header needs writing).
  let out: Uint8Array;
  let m = 0;
  if (stub === null) {
    out = new Uint8Array(msgLen);
  } else {
    out = new Uint8Array(responseStubLength(msgLen, stub));
    m = writeResponseStubHead(out, msgLen, stub);
  }
  out.set(r, m + 4);
  let p = writeResponseBodyAt(out, m + 20, body);
  const rand2 = random16(opts);
  for (let i = 0; i < 16; i++) out[p + i] = rand2[i]! ^ q[i]!;
  sha256Into(rand2, out, p + 16);
  p += 48;
  if (version === 6) {
    out.set(opts.hwid, p);
    out.set(q, p + 8);
    p += 24;
    v6HmacInto(body.clientTime, out.subarray(m + 4, p), out, p);
  }
  out.fill(padded - plainLen, m + 4 + plainLen, m + msgLen);
  cbcEncryptRegion(version === 5 ? V5_SCHEDULE : V6_SCHEDULE, ZERO_IV, 0, out, m + 4, padded, out, m + 4);
  out[m] = body.minorVersion & 0xff;
  out[m + 1] = body.minorVersion >>> 8;
  out[m + 2] = body.majorVersion & 0xff;
  out[m + 3] = body.majorVersion >>> 8;
  return out;
}

function random16(opts: EncodeResponseOptions): Uint8Array {
  const r = opts.random(16);
  if (r.length !== 16) throw new RangeError(`the random source returned ${r.length} bytes, not 16`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Client side: src/kms/exchange.ts (ClientExchange), the one implementation; its value-level wrappers
// are re-exported here for the callers that import the envelope.
export { encodeRequest, verifyResponse } from './exchange.js';
