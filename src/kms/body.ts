import { putU32le, u16le, u32le } from '../wire/bytes.js';
import { ProtocolError } from '../wire/errors.js';
import { guidFromBytes, guidToBytes, readGuid, writeGuid } from '../wire/guid.js';
import { Reader } from '../wire/reader.js';
import { decodeUtf16z, encodeUtf16, encodeUtf16Fixed } from '../wire/utf16.js';
import type { Writer } from '../wire/writer.js';
import type { KmsRequestBody, KmsResponseBody } from './messages.js';

export const BASE_REQUEST_SIZE = 236;
const WORKSTATION_UNITS = 64;
/** PIDSize is at most 128 bytes: 64 UTF-16 units including the NUL (spec c.2). */
const MAX_PID_SIZE = 128;

function u64At(b: Uint8Array, i: number): bigint {
  const lo = u32le(b, i);
  const hi = u32le(b, i + 4);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

/** Spec c.1. Reads exactly 236 bytes at `at`. */
export function decodeRequestBody(b: Uint8Array, at = 0): KmsRequestBody {
  // Hot path (every request): all 236 bytes are there, so read them straight from the array. The
  // Reader-based code below defines the behaviour for anything else (short input, odd offsets).
  if ((at | 0) === at && at >= 0 && at + BASE_REQUEST_SIZE <= b.length) {
    return {
      minorVersion: u16le(b, at),
      majorVersion: u16le(b, at + 2),
      vmInfo: u32le(b, at + 4),
      licenseStatus: u32le(b, at + 8),
      bindingExpiration: u32le(b, at + 12),
      applicationId: guidFromBytes(b, at + 16),
      skuId: guidFromBytes(b, at + 32),
      kmsId: guidFromBytes(b, at + 48),
      cmid: guidFromBytes(b, at + 64),
      requiredClientCount: u32le(b, at + 80),
      clientTime: u64At(b, at + 84),
      previousCmid: guidFromBytes(b, at + 92),
      workstation: decodeUtf16z(b.subarray(at + 108, at + BASE_REQUEST_SIZE), WORKSTATION_UNITS),
    };
  }
  const r = new Reader(b, at, at + BASE_REQUEST_SIZE);
  r.need(BASE_REQUEST_SIZE, 'BaseRequest');
  return {
    minorVersion: r.u16('MinorVer'),
    majorVersion: r.u16('MajorVer'),
    vmInfo: r.u32('VMInfo'),
    licenseStatus: r.u32('LicenseStatus'),
    bindingExpiration: r.u32('BindingExpiration'),
    applicationId: readGuid(r, 'ApplicationId'),
    skuId: readGuid(r, 'ActivationId'),
    kmsId: readGuid(r, 'KmsCountedId'),
    cmid: readGuid(r, 'ClientMachineId'),
    requiredClientCount: r.u32('RequiredClientCount'),
    clientTime: r.u64('ClientTime'),
    previousCmid: readGuid(r, 'PreviousClientMachineId'),
    // Informational; UTF-16LE up to the first NUL, at most 64 units (spec f.8 step 6).
    workstation: decodeUtf16z(r.bytesView(WORKSTATION_UNITS * 2, 'WorkstationName'), WORKSTATION_UNITS),
  };
}

export function writeRequestBody(w: Writer, q: KmsRequestBody): void {
  w.u16(q.minorVersion).u16(q.majorVersion).u32(q.vmInfo).u32(q.licenseStatus).u32(q.bindingExpiration);
  writeGuid(w, q.applicationId);
  writeGuid(w, q.skuId);
  writeGuid(w, q.kmsId);
  writeGuid(w, q.cmid);
  w.u32(q.requiredClientCount).u64(q.clientTime);
  writeGuid(w, q.previousCmid);
  w.raw(encodeUtf16Fixed(q.workstation, WORKSTATION_UNITS, 'WorkstationName'));
}

function pidSize(epid: string): number {
  return 2 * (epid.length + 1);
}

export function responseBodyLength(epid: string): number {
  return 44 + pidSize(epid);
}

/** Spec c.2. */
export function writeResponseBody(w: Writer, s: KmsResponseBody): void {
  const size = pidSize(s.epid);
  if (size > MAX_PID_SIZE) {
    throw new ProtocolError('BAD_EPID', `ePID of ${s.epid.length} characters does not fit in 128 bytes`);
  }
  w.u16(s.minorVersion).u16(s.majorVersion).u32(size).raw(encodeUtf16(s.epid)).u16(0);
  writeGuid(w, s.cmid);
  w.u64(s.clientTime).u32(s.currentCount).u32(s.activationInterval).u32(s.renewalInterval);
}

/** Scratch for u64 fields of writeResponseBodyAt. */
const U64 = new DataView(new ArrayBuffer(8));

/**
 * writeResponseBody into `out` at `at` without a Writer (the host's hot path); returns the offset just
 * past the body. Same bytes and the same BAD_EPID error. `out` must have responseBodyLength bytes at
 * `at` and be zero-filled there (a fresh array).
 */
export function writeResponseBodyAt(out: Uint8Array, at: number, s: KmsResponseBody): number {
  const epid = s.epid;
  const size = pidSize(epid);
  if (size > MAX_PID_SIZE) {
    throw new ProtocolError('BAD_EPID', `ePID of ${epid.length} characters does not fit in 128 bytes`);
  }
  let p = at;
  out[p] = s.minorVersion;
  out[p + 1] = s.minorVersion >>> 8;
  out[p + 2] = s.majorVersion;
  out[p + 3] = s.majorVersion >>> 8;
  out[p + 4] = size;
  out[p + 5] = size >>> 8;
  p += 8; // the PIDSize high bytes are 0 (size ≤ 128)
  for (let i = 0; i < epid.length; i++) {
    const c = epid.charCodeAt(i);
    out[p] = c;
    out[p + 1] = c >>> 8;
    p += 2;
  }
  p += 2; // NUL terminator (zero-filled)
  guidToBytes(s.cmid, out, p);
  p += 16;
  U64.setBigUint64(0, s.clientTime, true);
  for (let i = 0; i < 8; i++) out[p + i] = U64.getUint8(i);
  p += 8;
  p = putU32le(out, p, s.currentCount);
  p = putU32le(out, p, s.activationInterval);
  return putU32le(out, p, s.renewalInterval);
}

/**
 * Spec c.2, client side: PIDSize bounded (even, ≤ 128, within the bytes), the last unit NUL and no
 * earlier one. Returns the body and the offset just past it.
 */
export function decodeResponseBody(
  b: Uint8Array,
  at: number,
  end: number,
): { body: KmsResponseBody; end: number } {
  const r = new Reader(b, at, end);
  const minorVersion = r.u16('MinorVer');
  const majorVersion = r.u16('MajorVer');
  const size = r.u32('PIDSize');
  if (size < 2 || size > MAX_PID_SIZE || size % 2 !== 0) {
    throw new ProtocolError('BAD_EPID', `PIDSize ${size} outside 2..128 or odd`, { field: 'PIDSize' });
  }
  const pid = r.bytesView(size, 'KmsPID');
  const units = size / 2;
  for (let i = 0; i < units; i++) {
    const isNul = pid[2 * i] === 0 && pid[2 * i + 1] === 0;
    if (isNul !== (i === units - 1)) {
      throw new ProtocolError('BAD_EPID', 'ePID must be NUL-terminated exactly at PIDSize', {
        field: 'KmsPID',
      });
    }
  }
  const epid = decodeUtf16z(pid);
  const body: KmsResponseBody = {
    minorVersion,
    majorVersion,
    epid,
    cmid: readGuid(r, 'ClientMachineId'),
    clientTime: r.u64('ClientTime'),
    currentCount: r.u32('CurrentCount'),
    activationInterval: r.u32('VLActivationInterval'),
    renewalInterval: r.u32('VLRenewalInterval'),
  };
  return { body, end: r.offset };
}
