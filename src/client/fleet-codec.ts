/**
 * The client side of one KMS exchange, built for a simulated fleet of thousands of machines that talk
 * to an in-process host hundreds of thousands of times.
 *
 * It is the real protocol, byte for byte: every request is a complete V4/V5/V6 message in an NDR32
 * stub (fresh random IV per request, real AES / modified AES, real V4 MAC), and every answer gets every
 * check a careful client runs (spec c.2–c.6: version echo, PKCS#7 pad, PIDSize and ePID NUL rule,
 * CMID and time-stamp echo, SHA-256 of Rand2, V6 XoredIVs, V6 HMAC over the time slots t, t−1, t+1,
 * the V5/V6 IV rules, V4 MAC). What it avoids is rebuilding per request what does not change:
 *
 * - each machine's 236-byte base request is written once (`writeRequestBody`) and only the three
 *   fields that move (LicenseStatus, BindingExpiration, ClientTime) are patched per request;
 * - the request is encrypted in the "zero-IV view" (spec c.4): the first plaintext block is a fresh
 *   random Q, so the wire IV is E(Q) and Q is known without the extra block decryption;
 * - request and response buffers are allocated once and reused;
 * - the answer is checked in place on the decrypted buffer without building objects; SHA-256 and the
 *   V6 HMAC use node:crypto one-shot hashes, the HMAC's inner pad block sitting in the 64 bytes just
 *   before the decrypted plaintext so nothing is copied (the key is still `v6HmacKey`, spec d.5).
 *
 * `test/unit/fleet/codec.test.ts` checks it against `encodeRequest` / `verifyResponse` of src/kms.
 */
import crypto from 'node:crypto';
import { cbcDecryptInto, cbcEncryptInto } from '../crypto/cbc.js';
import { V5_SCHEDULE, V6_SCHEDULE } from '../crypto/keys.js';
import { v4Mac } from '../crypto/v4-mac.js';
import { v6HmacKey } from '../crypto/v6-hmac.js';
import { BASE_REQUEST_SIZE, writeRequestBody } from '../kms/body.js';
import type { KmsRequestBody, KmsVersion } from '../kms/messages.js';
import { MAX_MESSAGE_SIZE } from '../kms/stub.js';
import { fileTimeFromMs } from '../wire/filetime.js';
import { decodeUtf16z } from '../wire/utf16.js';
import { Writer } from '../wire/writer.js';

/** Offsets inside the 236-byte base request (spec c.1). */
const OFF_LICENSE_STATUS = 8;
const OFF_BINDING_EXPIRATION = 12;
const OFF_CMID = 64;
const OFF_CLIENT_TIME = 84;

const ZERO_IV = new Uint8Array(16);
/** NDR32 request stub head: requestSize, max_count (spec b.1). */
const STUB_HEAD = 8;
/** NDR32 response stub head: responseSize, referent, max_count (spec b.2). */
const RESP_HEAD = 12;
/** HMAC-SHA256 block size: the inner / outer key pads (RFC 2104). */
const HMAC_BLOCK = 64;

type OneShotHash = (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer;
/** `crypto.hash` (Node ≥ 20.12), else a createHash equivalent. */
const hashOnce: OneShotHash =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (crypto.hash as unknown as OneShotHash)
    : (algorithm, data) => crypto.createHash(algorithm).update(data).digest();

/** One machine's request as prepared once: the plaintext, patched in place for every request. */
export interface RequestTemplate {
  readonly version: KmsVersion;
  /**
   * V5/V6: 256 bytes in the zero-IV view, `Q ‖ BaseRequest ‖ 04 04 04 04`. V4: the 236-byte base.
   * The base request starts at `baseOffset`.
   */
  readonly plain: Uint8Array;
  readonly baseOffset: number;
  readonly minorVersion: number;
}

/** The answer as the client understood it; `error` set when it failed a check. */
export interface FastOutcome {
  /** CurrentCount of a verified answer, or null. */
  count: number | null;
  activationInterval: number;
  renewalInterval: number;
  /** The host's HRESULT (0 for a normal answer). */
  hresult: number;
  /** `CODE: message` of the first failed check, or null. */
  error: string | null;
}

export type BytesSource = (n: number) => Uint8Array;

export function prepareRequest(body: KmsRequestBody): RequestTemplate {
  const version = body.majorVersion;
  if (version !== 4 && version !== 5 && version !== 6) {
    throw new RangeError(`fleet machines speak KMS V4, V5 or V6, not ${version}`);
  }
  const w = new Writer(BASE_REQUEST_SIZE);
  writeRequestBody(w, body);
  const base = w.finish();
  if (version === 4) return { version, plain: base, baseOffset: 0, minorVersion: body.minorVersion };
  const plain = new Uint8Array(256);
  plain.set(base, 16);
  plain.fill(4, 16 + BASE_REQUEST_SIZE);
  return { version, plain, baseOffset: 16, minorVersion: body.minorVersion };
}

function fail(code: string, message: string): FastOutcome {
  return { count: null, activationInterval: 0, renewalInterval: 0, hresult: 0, error: `${code}: ${message}` };
}

function equalAt(a: Uint8Array, ai: number, b: Uint8Array, bi: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ai + i] !== b[bi + i]) return false;
  return true;
}

/**
 * Encodes requests into one reused NDR32 stub and verifies answers into one reused buffer. Not
 * re-entrant: verify the answer to one request before encoding the next (the host call in between is
 * synchronous).
 */
export class FleetCodec {
  private readonly stub = new Uint8Array(STUB_HEAD + 260);
  private readonly stubView = new DataView(this.stub.buffer);
  /** The HMAC inner pad block, then the decrypted response (its plaintext starts at HMAC_BLOCK). */
  private readonly scratch = new Uint8Array(HMAC_BLOCK + MAX_MESSAGE_SIZE);
  private readonly plainView = this.scratch.subarray(HMAC_BLOCK);
  /** The HMAC outer pad block followed by the inner digest. */
  private readonly outer = new Uint8Array(HMAC_BLOCK + 32);
  private readonly q = new Uint8Array(16);
  private readonly rand2 = new Uint8Array(16);
  private current: RequestTemplate | null = null;
  private currentTime = 0n;
  /** The ePID of the first verified answer (decoded once, for reports). */
  firstEpid: string | null = null;

  constructor(private readonly random: BytesSource) {}

  /**
   * The NDR32 request stub for this machine at `nowMs` (a view into a reused buffer: pass it to the
   * host before the next call).
   */
  encode(t: RequestTemplate, nowMs: number, licenseStatus: number, bindingExpiration: number): Uint8Array {
    const p = t.plain;
    const b = t.baseOffset;
    const pv = new DataView(p.buffer, p.byteOffset, p.byteLength);
    const time = fileTimeFromMs(nowMs);
    pv.setUint32(b + OFF_LICENSE_STATUS, licenseStatus >>> 0, true);
    pv.setUint32(b + OFF_BINDING_EXPIRATION, bindingExpiration >>> 0, true);
    pv.setBigUint64(b + OFF_CLIENT_TIME, time, true);
    this.current = t;
    this.currentTime = time;
    const s = this.stub;
    if (t.version === 4) {
      const len = BASE_REQUEST_SIZE + 16;
      this.stubView.setUint32(0, len, true);
      this.stubView.setUint32(4, len, true);
      s.set(p, STUB_HEAD);
      s.set(v4Mac(p), STUB_HEAD + BASE_REQUEST_SIZE);
      return s.subarray(0, STUB_HEAD + len);
    }
    // Zero-IV view: a fresh Q as first block, so the wire IV (first cipher block) is E(Q).
    const q = this.random(16);
    p.set(q, 0);
    this.q.set(q);
    this.stubView.setUint32(0, 260, true);
    this.stubView.setUint32(4, 260, true);
    s[STUB_HEAD] = t.minorVersion & 0xff;
    s[STUB_HEAD + 1] = t.minorVersion >>> 8;
    s[STUB_HEAD + 2] = t.version;
    s[STUB_HEAD + 3] = 0;
    cbcEncryptInto(t.version === 5 ? V5_SCHEDULE : V6_SCHEDULE, ZERO_IV, p, 0, 256, s, STUB_HEAD + 4);
    return s.subarray(0, STUB_HEAD + 260);
  }

  /** Checks an NDR32 response stub to the last encoded request (spec b.2, b.3, c.2–c.6). */
  verify(stub: Uint8Array): FastOutcome {
    const t = this.current;
    if (!t) throw new Error('FleetCodec.verify before encode');
    if (stub.length < 12) return fail('BAD_STUB', `response stub of ${stub.length} bytes`);
    const sv = new DataView(stub.buffer, stub.byteOffset, stub.byteLength);
    const size = sv.getUint32(0, true);
    const referent = sv.getUint32(4, true);
    if (referent === 0) {
      if (stub.length !== 12) return fail('BAD_STUB', `error stub of ${stub.length} bytes, ndr32 needs 12`);
      const hresult = sv.getUint32(8, true);
      if (hresult === 0) return fail('BAD_STUB', 'NULL response pointer with a success HRESULT');
      return { count: null, activationInterval: 0, renewalInterval: 0, hresult, error: null };
    }
    if (size > MAX_MESSAGE_SIZE) return fail('BAD_STUB', `responseSize ${size}`);
    const want = RESP_HEAD + size + ((4 - (size & 3)) & 3) + 4;
    if (stub.length !== want || sv.getUint32(8, true) !== size) {
      return fail('BAD_STUB', `response stub of ${stub.length} bytes for a ${size}-byte message`);
    }
    const hresult = sv.getUint32(want - 4, true);
    if (hresult !== 0)
      return { count: null, activationInterval: 0, renewalInterval: 0, hresult, error: null };
    const m = stub.subarray(RESP_HEAD, RESP_HEAD + size);
    if (m.length < 4) return fail('BAD_MESSAGE', 'response without a version');
    const minor = m[0]! | (m[1]! << 8);
    const major = m[2]! | (m[3]! << 8);
    if (minor !== t.minorVersion || major !== t.version) {
      return fail('BAD_ECHO', `response version ${major}.${minor} differs from the request's`);
    }
    return t.version === 4 ? this.verifyV4(m) : this.verifyV56(m, t.version);
  }

  /** The base response at `at` in `b`, up to `end` (spec c.2). Returns its end or an outcome. */
  private body(b: Uint8Array, at: number, end: number, out: { end: number; o: FastOutcome | null }): void {
    const t = this.current!;
    if (at + 8 > end) {
      out.o = fail('SHORT_INPUT', 'base response');
      return;
    }
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (v.getUint16(at, true) !== t.minorVersion || v.getUint16(at + 2, true) !== t.version) {
      out.o = fail('BAD_ECHO', 'encrypted response version differs from the request');
      return;
    }
    const pidSize = v.getUint32(at + 4, true);
    if (pidSize < 2 || pidSize > 128 || pidSize % 2 !== 0) {
      out.o = fail('BAD_EPID', `PIDSize ${pidSize} outside 2..128 or odd`);
      return;
    }
    const pid = at + 8;
    const bodyEnd = pid + pidSize + 36;
    if (bodyEnd > end) {
      out.o = fail('SHORT_INPUT', 'base response');
      return;
    }
    const units = pidSize / 2;
    for (let i = 0; i < units; i++) {
      const isNul = b[pid + 2 * i] === 0 && b[pid + 2 * i + 1] === 0;
      if (isNul !== (i === units - 1)) {
        out.o = fail('BAD_EPID', 'ePID must be NUL-terminated exactly at PIDSize');
        return;
      }
    }
    const c = pid + pidSize;
    const p = t.plain;
    if (!equalAt(b, c, p, t.baseOffset + OFF_CMID, 16)) {
      out.o = fail('BAD_ECHO', 'response echoes another CMID');
      return;
    }
    if (v.getBigUint64(c + 16, true) !== this.currentTime) {
      out.o = fail('BAD_ECHO', 'response does not echo the request time stamp');
      return;
    }
    this.firstEpid ??= decodeUtf16z(b.subarray(pid, pid + pidSize));
    out.end = bodyEnd;
    out.o = {
      count: v.getUint32(c + 24, true),
      activationInterval: v.getUint32(c + 28, true),
      renewalInterval: v.getUint32(c + 32, true),
      hresult: 0,
      error: null,
    };
  }

  private verifyV4(m: Uint8Array): FastOutcome {
    const r = { end: 0, o: null as FastOutcome | null };
    this.body(m, 0, m.length, r);
    if (!r.o || r.o.error) return r.o!;
    if (m.length !== r.end + 16) return fail('BAD_MESSAGE', `V4 response of ${m.length} bytes`);
    if (!equalAt(v4Mac(m.subarray(0, r.end)), 0, m, r.end, 16)) return fail('BAD_MAC', 'V4 response MAC');
    return r.o;
  }

  private verifyV56(m: Uint8Array, version: 5 | 6): FastOutcome {
    const cipherLen = m.length - 4;
    if (cipherLen < 32 || cipherLen % 16 !== 0)
      return fail('BAD_MESSAGE', `ciphertext of ${cipherLen} bytes`);
    // The request's wire IV is the first cipher block of the request still in `stub`.
    const sameIv = equalAt(m, 4, this.stub, STUB_HEAD + 4, 16);
    if (version === 5 && !sameIv) return fail('BAD_ECHO', 'V5 response IV differs from the request IV');
    if (version === 6 && sameIv) return fail('BAD_ECHO', 'V6 response IV equals the request IV');
    const d = this.plainView;
    cbcDecryptInto(version === 5 ? V5_SCHEDULE : V6_SCHEDULE, ZERO_IV, m, 4, cipherLen, d, 0);
    const pad = d[cipherLen - 1]!;
    if (pad < 1 || pad > 16) return fail('BAD_PADDING', `PKCS#7 pad byte ${pad}`);
    for (let i = cipherLen - pad; i < cipherLen; i++)
      if (d[i] !== pad) return fail('BAD_PADDING', 'pad bytes');
    const plainLen = cipherLen - pad;
    const r = { end: 0, o: null as FastOutcome | null };
    this.body(d, 16, plainLen, r);
    if (!r.o || r.o.error) return r.o!;
    const end = r.end;
    const tail = version === 5 ? 48 : 88;
    if (plainLen !== end + tail)
      return fail('BAD_MESSAGE', `${plainLen - end} bytes after the base response`);
    const q = this.q;
    const rand2 = this.rand2;
    for (let i = 0; i < 16; i++) rand2[i] = d[end + i]! ^ q[i]!;
    if (!equalAt(hashOnce('sha256', rand2, 'buffer'), 0, d, end + 16, 32)) {
      return fail('BAD_MAC', 'SHA-256 of the random value');
    }
    if (version === 5) return r.o;
    if (!equalAt(d, end + 56, q, 0, 16)) return fail('BAD_ECHO', 'V6 XoredIVs differ from Q');
    for (const k of [0, -1, 1]) {
      if (equalAt(this.hmac(v6HmacKey(this.currentTime, k), end + 72), 16, d, end + 72, 16)) return r.o;
    }
    return fail('BAD_MAC', 'V6 HMAC does not match any time slot');
  }

  /**
   * HMAC-SHA256 (RFC 2104) with a 16-byte key over the first `len` plaintext bytes: H(K⊕opad ‖
   * H(K⊕ipad ‖ m)), the ipad block written just before the plaintext in `scratch`.
   */
  private hmac(key: Uint8Array, len: number): Uint8Array {
    const s = this.scratch;
    const o = this.outer;
    s.fill(0x36, 0, HMAC_BLOCK);
    o.fill(0x5c, 0, HMAC_BLOCK);
    for (let i = 0; i < key.length; i++) {
      s[i]! ^= key[i]!;
      o[i]! ^= key[i]!;
    }
    o.set(hashOnce('sha256', s.subarray(0, HMAC_BLOCK + len), 'buffer'), HMAC_BLOCK);
    return hashOnce('sha256', o, 'buffer');
  }
}
