import { decryptBlock } from '../crypto/aes.js';
import { cbcDecryptInto, cbcEncryptInto } from '../crypto/cbc.js';
import { V5_SCHEDULE, V6_SCHEDULE } from '../crypto/keys.js';
import { v4Mac } from '../crypto/v4-mac.js';
import { sha256Into, v6HmacInto } from '../crypto/v6-hmac.js';
import { equalAt, u16le, u32le } from '../wire/bytes.js';
import { ProtocolError } from '../wire/errors.js';
import type { FileTime } from '../wire/filetime.js';
import { guidFromBytes, guidToBytes } from '../wire/guid.js';
import { decodeUtf16z } from '../wire/utf16.js';
import { Writer } from '../wire/writer.js';
import { BASE_REQUEST_SIZE, writeRequestBody } from './body.js';
import { parseEpid } from './epid.js';
import type { KmsRequestBody, KmsVersion, NdrSyntax, RequestContext, VerifiedResponse } from './messages.js';
import {
  errorStubLength,
  MAX_MESSAGE_SIZE,
  requestStubHeadLength,
  responseStubLength,
  unwrapResponseStub,
  writeRequestStubHead,
} from './stub.js';

/**
 * The client side of one KMS exchange (spec b.1–b.3, c.1–c.6), sans-io and the only implementation of
 * it: the TCP client, the fleet hosts and the tests all go through `ClientExchange`.
 *
 * - `prepareRequest` writes a machine's 236-byte base request once (a `RequestTemplate`);
 * - `encode` patches the fields that move (ClientTime, and LicenseStatus / BindingExpiration when
 *   given), draws the V5/V6 IV from the injected Random and encrypts into a reused buffer;
 * - `verify` / `verifyStub` run every check a careful client runs on the answer (below) and leave the
 *   values in a reused `ExchangeResult`; a failed check throws `ProtocolError`.
 *
 * Checks, in order, each with one code: the clear version echoes the request's (`BAD_ECHO`); V4: the
 * base response, then exactly its MAC (`BAD_MESSAGE` for any other length, `BAD_MAC`); V5/V6: whole
 * cipher blocks (`BAD_MESSAGE`), the IV rule — V5 equal to the request's, V6 different (`BAD_ECHO`,
 * spec c.5, c.6) —, PKCS#7 (`BAD_PADDING`), the base response, exactly the envelope's tail after it
 * (`BAD_MESSAGE`), SHA-256(RandomXoredIVs ⊕ Q) = Hash (`BAD_MAC`), V6 XoredIVs = Q (`BAD_ECHO`) and the
 * HMAC over the time slots t, t−1, t+1 (`BAD_MAC`, spec d.5). The base response (spec c.2): within the
 * bytes (`SHORT_INPUT`), the encrypted version (`BAD_ECHO`), PIDSize even and in 2..128 and the ePID
 * NUL-terminated exactly at PIDSize (`BAD_EPID`); after the integrity checks the CMID and ClientTime
 * echoes (`BAD_ECHO`) and, with `checkEpid`, the ePID format of spec e.1 (`BAD_EPID`). The NDR stub
 * (spec b.2, b.3) must have exactly the length its size fields give (`BAD_STUB`).
 *
 * Not re-entrant: verify the answer to one request before encoding the next. Views it returns (the
 * message, the stub, `hwid`) are valid until the next call.
 */

/** The injected randomness: 16 bytes per V5/V6 request for the IV (spec c.4, d.6). */
interface ExchangeRandom {
  bytes(n: number): Uint8Array;
}

/** Offsets inside the 236-byte base request (spec c.1). */
const OFF_LICENSE_STATUS = 8;
const OFF_BINDING_EXPIRATION = 12;
const OFF_CMID = 64;
const OFF_CLIENT_TIME = 84;
const V4_REQUEST_SIZE = BASE_REQUEST_SIZE + 16; // 252
const V56_REQUEST_SIZE = 4 + 16 + 240; // 260
/** The message starts here in the request buffer, leaving room for an NDR64 stub head (spec b.1). */
const MSG_AT = 16;
const ZERO_IV = new Uint8Array(16);
const PAD4 = 0x04;
/** PIDSize is at most 128 bytes: 64 UTF-16 units including the NUL (spec c.2). */
const MAX_PID_SIZE = 128;

/** One machine's request, written once; `encode` patches it in place. */
export interface RequestTemplate {
  /** The envelope: 4, 5 or 6 (a request with another MajorVer is encoded V6-shaped). */
  readonly cipher: KmsVersion;
  readonly majorVersion: number;
  readonly minorVersion: number;
  /** BaseRequest (236 bytes) ‖ 04 04 04 04, the V5/V6 plaintext; V4 MACs the first 236 bytes. */
  readonly plain: Uint8Array;
  /** @internal a view of `plain` for patching. */
  readonly view: DataView;
}

export function prepareRequest(body: KmsRequestBody): RequestTemplate {
  const v = body.majorVersion;
  const cipher: KmsVersion = v === 4 || v === 5 ? v : 6;
  const w = new Writer(BASE_REQUEST_SIZE);
  writeRequestBody(w, body);
  const plain = new Uint8Array(BASE_REQUEST_SIZE + 4);
  plain.set(w.finish());
  plain.fill(PAD4, BASE_REQUEST_SIZE);
  return {
    cipher,
    majorVersion: v,
    minorVersion: body.minorVersion,
    plain,
    view: new DataView(plain.buffer),
  };
}

/** A verified answer, in a reused object: read it before the next `verify`. */
class ExchangeResult {
  /** The host's HRESULT: 0 for a verified answer (`verifyStub` only; `verify` leaves it 0). */
  hresult = 0;
  /** Whether a KMS message was verified (false for an error stub). */
  answered = false;
  currentCount = 0;
  activationInterval = 0;
  renewalInterval = 0;
  /** V6: the HMAC time slot (0, −1, +1) that matched; else null. */
  hmacSlot: number | null = null;
  /** @internal where the ePID (UTF-16LE with its NUL) and the V6 HwId lie in `bytes`. */
  bytes: Uint8Array = ZERO_IV;
  pidAt = 0;
  pidSize = 0;
  hwidAt = -1;

  /** The host's ePID (decoded on demand). */
  epid(): string {
    return decodeUtf16z(this.bytes.subarray(this.pidAt, this.pidAt + this.pidSize));
  }

  /** V6: the host's 8-byte HwId (a view, valid until the next verify); else null. */
  hwid(): Uint8Array | null {
    return this.hwidAt < 0 ? null : this.bytes.subarray(this.hwidAt, this.hwidAt + 8);
  }
}

interface ClientExchangeOptions {
  /** Also check the ePID's format (spec e.1) and fail with BAD_EPID. Default false. */
  checkEpid?: boolean;
}

function fail(
  code: 'BAD_MESSAGE' | 'BAD_ECHO' | 'BAD_MAC' | 'BAD_PADDING' | 'BAD_EPID' | 'BAD_STUB' | 'SHORT_INPUT',
  message: string,
  field: string,
): never {
  throw new ProtocolError(code, message, { field });
}

export class ClientExchange {
  private readonly checkEpid: boolean;
  /** The request message at MSG_AT, its NDR stub head just before it. */
  private readonly req = new Uint8Array(MSG_AT + V56_REQUEST_SIZE);
  private reqLen = 0;
  /** What the answer must echo. */
  private expectMajor = -1;
  private expectMinor = 0;
  private cipher: KmsVersion = 6;
  private clientTime: FileTime = 0n;
  /** ClientTime's low and high 32 bits, for the echo check without BigInt arithmetic. */
  private timeLo = 0;
  private timeHi = 0;
  private readonly cmid = new Uint8Array(16);
  private readonly iv = new Uint8Array(16);
  private readonly q = new Uint8Array(16);
  /** The decrypted (or, V4, copied) response. */
  private readonly plain = new Uint8Array(MAX_MESSAGE_SIZE);
  private readonly digest = new Uint8Array(32);
  private readonly rand2 = new Uint8Array(16);
  readonly result = new ExchangeResult();

  constructor(opts: ClientExchangeOptions = {}) {
    this.checkEpid = opts.checkEpid ?? false;
  }

  /**
   * The request message for `t` at `clientTime` (a view into a reused buffer). LicenseStatus and
   * BindingExpiration are patched into the template when given. V5/V6 draw the 16-byte IV from
   * `random` (spec c.4).
   */
  encode(
    t: RequestTemplate,
    clientTime: FileTime,
    random: ExchangeRandom,
    licenseStatus?: number,
    bindingExpiration?: number,
  ): Uint8Array {
    const p = t.plain;
    const pv = t.view;
    if (licenseStatus !== undefined) pv.setUint32(OFF_LICENSE_STATUS, licenseStatus >>> 0, true);
    if (bindingExpiration !== undefined) pv.setUint32(OFF_BINDING_EXPIRATION, bindingExpiration >>> 0, true);
    pv.setBigUint64(OFF_CLIENT_TIME, clientTime, true);
    this.expectMajor = t.majorVersion;
    this.expectMinor = t.minorVersion;
    this.cipher = t.cipher;
    this.setTime(clientTime);
    this.cmid.set(p.subarray(OFF_CMID, OFF_CMID + 16));
    const m = this.req;
    if (t.cipher === 4) {
      m.set(p.subarray(0, BASE_REQUEST_SIZE), MSG_AT);
      m.set(v4Mac(p.subarray(0, BASE_REQUEST_SIZE)), MSG_AT + BASE_REQUEST_SIZE);
      this.reqLen = V4_REQUEST_SIZE;
      return m.subarray(MSG_AT, MSG_AT + V4_REQUEST_SIZE);
    }
    const iv = random.bytes(16);
    if (iv.length !== 16) throw new RangeError(`the random source returned ${iv.length} bytes, not 16`);
    this.iv.set(iv);
    const ks = t.cipher === 5 ? V5_SCHEDULE : V6_SCHEDULE;
    // Q = D(IV): what the host sees as the first block in the zero-IV view, and must echo (spec c.4).
    decryptBlock(ks, this.iv, 0, this.q, 0);
    m[MSG_AT] = t.minorVersion & 0xff;
    m[MSG_AT + 1] = t.minorVersion >>> 8;
    m[MSG_AT + 2] = t.majorVersion & 0xff;
    m[MSG_AT + 3] = t.majorVersion >>> 8;
    m.set(this.iv, MSG_AT + 4);
    cbcEncryptInto(ks, this.iv, p, 0, BASE_REQUEST_SIZE + 4, m, MSG_AT + 20);
    this.reqLen = V56_REQUEST_SIZE;
    return m.subarray(MSG_AT, MSG_AT + V56_REQUEST_SIZE);
  }

  private setTime(t: FileTime): void {
    this.clientTime = t;
    this.timeLo = Number(BigInt.asUintN(32, t));
    this.timeHi = Number(BigInt.asUintN(32, t >> 32n));
  }

  /** The last encoded message in its NDR request stub (spec b.1), a view into the same buffer. */
  requestStub(syntax: NdrSyntax): Uint8Array {
    const n = this.reqLen;
    if (n === 0) throw new Error('ClientExchange.requestStub before encode');
    const at = MSG_AT - requestStubHeadLength(syntax);
    writeRequestStubHead(this.req, at, n, syntax);
    return this.req.subarray(at, MSG_AT + n);
  }

  /** What the answer to the last request must echo, as a value (a copy). */
  context(): RequestContext {
    const v56 = this.cipher !== 4;
    return {
      version: this.expectMajor as KmsVersion,
      minorVersion: this.expectMinor,
      cmid: guidFromBytes(this.cmid),
      clientTime: this.clientTime,
      iv: v56 ? this.iv.slice() : null,
      q: v56 ? this.q.slice() : null,
    };
  }

  /** Expect the answer to a request encoded elsewhere (`verifyResponse`, transcripts). */
  expect(ctx: RequestContext): void {
    const v = ctx.version as number;
    this.expectMajor = v;
    this.expectMinor = ctx.minorVersion;
    this.cipher = v === 4 || v === 5 ? v : 6;
    this.setTime(ctx.clientTime);
    guidToBytes(ctx.cmid, this.cmid, 0);
    if (this.cipher !== 4) {
      if (ctx.iv?.length !== 16 || ctx.q?.length !== 16) {
        throw new RangeError(`a V${v} request context needs its 16-byte IV and Q`);
      }
      this.iv.set(ctx.iv);
      this.q.set(ctx.q);
    }
    this.reqLen = 0;
  }

  /**
   * Checks an NDR response stub to the last request (spec b.2, b.3): an error stub sets `hresult` and
   * leaves `answered` false; a message with HRESULT 0 is verified. Throws ProtocolError.
   */
  verifyStub(stub: Uint8Array, syntax: NdrSyntax): ExchangeResult {
    const { hresult, message } = unwrapResponseStub(stub, syntax);
    const r = this.result;
    if (message === null) {
      const want = errorStubLength(syntax);
      if (stub.length !== want)
        fail('BAD_STUB', `error stub of ${stub.length} bytes, ${syntax} needs ${want}`, 'stub');
      if (hresult === 0) fail('BAD_STUB', 'NULL response pointer with a success HRESULT', 'referent');
      this.clear(hresult);
      return r;
    }
    const want = responseStubLength(message.length, syntax);
    if (stub.length !== want) {
      fail(
        'BAD_STUB',
        `response stub of ${stub.length} bytes, a ${message.length}-byte message needs ${want}`,
        'stub',
      );
    }
    if (hresult !== 0) {
      // The host's return value wins over any data it also sent.
      this.clear(hresult);
      return r;
    }
    return this.verify(message);
  }

  private clear(hresult: number): void {
    const r = this.result;
    r.hresult = hresult >>> 0;
    r.answered = false;
    r.currentCount = 0;
    r.activationInterval = 0;
    r.renewalInterval = 0;
    r.hmacSlot = null;
    r.pidSize = 0;
    r.hwidAt = -1;
  }

  /** Verifies a KMS response message to the last request (spec c.2–c.6). Throws ProtocolError. */
  verify(message: Uint8Array): ExchangeResult {
    if (this.expectMajor < 0) throw new Error('ClientExchange.verify before encode or expect');
    this.clear(0);
    const len = message.length;
    if (len < 4) fail('BAD_MESSAGE', `KMS message of ${len} bytes has no version`, 'Version');
    if (len > MAX_MESSAGE_SIZE) fail('BAD_MESSAGE', `KMS message of ${len} bytes`, 'Version');
    const minor = u16le(message, 0);
    const major = u16le(message, 2);
    if (major !== this.expectMajor || minor !== this.expectMinor) {
      fail('BAD_ECHO', `response version ${major}.${minor} differs from the request's`, 'Version');
    }
    const d = this.plain;
    const r = this.result;
    r.bytes = d;
    if (this.cipher === 4) {
      d.set(message);
      const end = this.baseResponse(0, len);
      if (len !== end + 16) fail('BAD_MESSAGE', `V4 response of ${len} bytes, ${end + 16} expected`, 'MAC');
      if (!equalAt(v4Mac(d.subarray(0, end)), 0, d, end, 16))
        fail('BAD_MAC', 'V4 response MAC does not match', 'MAC');
    } else {
      this.verifyV56(message);
    }
    if (!equalAt(d, r.pidAt + r.pidSize, this.cmid, 0, 16)) {
      const got = guidFromBytes(d, r.pidAt + r.pidSize);
      fail(
        'BAD_ECHO',
        `response echoes CMID ${got}, request had ${guidFromBytes(this.cmid)}`,
        'ClientMachineId',
      );
    }
    const at = r.pidAt + r.pidSize + 16;
    if (u32le(d, at) !== this.timeLo || u32le(d, at + 4) !== this.timeHi) {
      fail('BAD_ECHO', 'response does not echo the request time stamp', 'ClientTime');
    }
    if (this.checkEpid) {
      try {
        parseEpid(r.epid());
      } catch (e) {
        fail('BAD_EPID', `the host's ePID is malformed: ${(e as Error).message}`, 'KmsPID');
      }
    }
    r.answered = true;
    return r;
  }

  private verifyV56(message: Uint8Array): void {
    const version = this.cipher;
    const cipherLen = message.length - 4;
    if (cipherLen < 32 || cipherLen % 16 !== 0) {
      fail('BAD_MESSAGE', `V${version} response ciphertext of ${cipherLen} bytes`, 'ciphertext');
    }
    const sameIv = equalAt(message, 4, this.iv, 0, 16);
    if (version === 5 && !sameIv) fail('BAD_ECHO', 'V5 response IV differs from the request IV', 'IV');
    if (version === 6 && sameIv) fail('BAD_ECHO', 'V6 response IV equals the request IV', 'IV');
    const d = this.plain;
    cbcDecryptInto(version === 5 ? V5_SCHEDULE : V6_SCHEDULE, ZERO_IV, message, 4, cipherLen, d, 0);
    const pad = d[cipherLen - 1]!;
    if (pad < 1 || pad > 16) fail('BAD_PADDING', `PKCS#7 pad byte ${pad}`, 'padding');
    for (let i = cipherLen - pad; i < cipherLen; i++) {
      if (d[i] !== pad) fail('BAD_PADDING', 'PKCS#7 pad bytes differ', 'padding');
    }
    const plainLen = cipherLen - pad;
    const end = this.baseResponse(16, plainLen);
    const tail = version === 5 ? 48 : 48 + 8 + 16 + 16;
    if (plainLen !== end + tail) {
      throw new ProtocolError(
        'BAD_MESSAGE',
        `V${version} response plaintext has ${plainLen - end} bytes after the base response`,
        {
          field: 'RandomXoredIVs',
          needed: tail,
          available: plainLen - end,
        },
      );
    }
    const q = this.q;
    const rand2 = this.rand2;
    for (let i = 0; i < 16; i++) rand2[i] = d[end + i]! ^ q[i]!;
    sha256Into(rand2, this.digest, 0);
    if (!equalAt(this.digest, 0, d, end + 16, 32)) {
      fail('BAD_MAC', 'SHA-256 of the random value does not match', 'Hash');
    }
    if (version === 5) return;
    if (!equalAt(d, end + 56, q, 0, 16))
      fail('BAD_ECHO', 'V6 XoredIVs differ from the decrypted request IV', 'XoredIVs');
    const r = this.result;
    r.hwidAt = end + 48;
    const macInput = d.subarray(0, end + 72);
    const got = end + 72;
    const mac = this.digest;
    for (let k = 0; k <= 2; k++) {
      const slot = k === 0 ? 0 : k === 1 ? -1 : 1;
      v6HmacInto(this.clientTime, macInput, mac, 0, slot);
      if (equalAt(mac, 0, d, got, 16)) {
        r.hmacSlot = slot;
        return;
      }
    }
    fail('BAD_MAC', 'V6 HMAC does not match any time slot', 'HMAC');
  }

  /**
   * The base response at `at` in the decrypted bytes, up to `end` (spec c.2); fills the counts and
   * returns the offset just past it.
   */
  private baseResponse(at: number, end: number): number {
    const d = this.plain;
    if (at + 8 > end) fail('SHORT_INPUT', 'the base response runs past the message', 'PIDSize');
    if (u16le(d, at) !== this.expectMinor || u16le(d, at + 2) !== this.expectMajor) {
      fail('BAD_ECHO', 'encrypted response version differs from the request', 'Version');
    }
    const size = u32le(d, at + 4);
    if (size < 2 || size > MAX_PID_SIZE || size % 2 !== 0)
      fail('BAD_EPID', `PIDSize ${size} outside 2..128 or odd`, 'PIDSize');
    const pid = at + 8;
    const bodyEnd = pid + size + 36;
    if (bodyEnd > end) fail('SHORT_INPUT', 'the base response runs past the message', 'KmsPID');
    const units = size / 2;
    for (let i = 0; i < units; i++) {
      const isNul = d[pid + 2 * i] === 0 && d[pid + 2 * i + 1] === 0;
      if (isNul !== (i === units - 1))
        fail('BAD_EPID', 'ePID must be NUL-terminated exactly at PIDSize', 'KmsPID');
    }
    const r = this.result;
    r.pidAt = pid;
    r.pidSize = size;
    const c = pid + size + 24;
    r.currentCount = u32le(d, c);
    r.activationInterval = u32le(d, c + 4);
    r.renewalInterval = u32le(d, c + 8);
    return bodyEnd;
  }
}

// ---------------------------------------------------------------------------------------------------
// Value-level wrappers (kmslab/protocol), one call per exchange.

interface EncodeRequestOptions {
  /** Needed for V5/V6: the 16-byte clear-text IV. */
  random?: (n: number) => Uint8Array;
}

const NO_RANDOM: ExchangeRandom = {
  bytes() {
    throw new RangeError('V5/V6 requests need a random source for the IV');
  },
};

/** Builds a request message (a copy); `body.majorVersion` chooses the protocol. */
export function encodeRequest(
  body: KmsRequestBody,
  opts: EncodeRequestOptions = {},
): { message: Uint8Array; context: RequestContext } {
  const x = SHARED;
  const random = opts.random ? { bytes: opts.random } : NO_RANDOM;
  const message = x.encode(prepareRequest(body), body.clientTime, random).slice();
  return { message, context: x.context() };
}

/** Verifies a response message against the request's context (ClientExchange.verify) into a value. */
export function verifyResponse(message: Uint8Array, ctx: RequestContext): VerifiedResponse {
  const x = SHARED;
  x.expect(ctx);
  const r = x.verify(message);
  const hwid = r.hwid();
  return {
    version: ctx.version,
    body: {
      minorVersion: ctx.minorVersion,
      majorVersion: ctx.version,
      epid: r.epid(),
      cmid: guidFromBytes(r.bytes, r.pidAt + r.pidSize),
      clientTime: ctx.clientTime,
      currentCount: r.currentCount,
      activationInterval: r.activationInterval,
      renewalInterval: r.renewalInterval,
    },
    hwid: hwid ? hwid.slice() : null,
    hmacSlot: r.hmacSlot,
  };
}

const SHARED = new ClientExchange();
