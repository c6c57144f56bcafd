/**
 * Turns a captured vlmcs → vlmcsd conversation into KmsClient options that make our client send the
 * same bytes: the captured CMID, workstation, ids, time stamp and, through a replaying Random, IVs.
 */
import type { KmsClientOptions } from '../../../src/client/client.js';
import type { Random } from '../../../src/host/random.js';
import { decodeRequest } from '../../../src/kms/envelope.js';
import type { DecodedRequest } from '../../../src/kms/messages.js';
import { unwrapRequestStub } from '../../../src/kms/stub.js';
import { PFC, PTYPE } from '../../../src/rpc/constants.js';
import { decodePdu } from '../../../src/rpc/decode.js';
import { type Capture, pduBytes } from '../../helpers/fixtures.js';

/** A Random that hands out the given byte strings in order and refuses anything else. */
export class ReplayRandom implements Random {
  private readonly queue: Uint8Array[];
  constructor(values: Uint8Array[]) {
    this.queue = [...values];
  }
  get left(): number {
    return this.queue.length;
  }
  bytes(n: number): Uint8Array {
    const v = this.queue.shift();
    if (!v || v.length !== n) throw new Error(`ReplayRandom: no ${n}-byte value left`);
    return v.slice();
  }
  uint32(): number {
    throw new Error('ReplayRandom: uint32 not scripted');
  }
  below(): number {
    throw new Error('ReplayRandom: below not scripted');
  }
  int(): number {
    throw new Error('ReplayRandom: int not scripted');
  }
  float(): number {
    throw new Error('ReplayRandom: float not scripted');
  }
  fork(): Random {
    throw new Error('ReplayRandom: fork not scripted');
  }
}

export interface CapturedRequest {
  conn: number;
  decoded: DecodedRequest;
  ndr: 'ndr32' | 'ndr64';
}

export function capturedRequests(cap: Capture): CapturedRequest[] {
  const out: CapturedRequest[] = [];
  for (const p of cap.pdus) {
    if (p.dir !== 'c2s' || !p.hex || p.rpc?.ptype !== PTYPE.REQUEST) continue;
    const ndr = p.rpc.syntax === 'NDR64' ? 'ndr64' : 'ndr32';
    const msg = unwrapRequestStub(pduBytes(p).subarray(24), ndr);
    out.push({ conn: p.conn, decoded: decodeRequest(msg, { lenient: true }), ndr });
  }
  return out;
}

/** Client options reproducing the capture's client (one CMID, one time stamp). */
export function clientOptionsFromCapture(
  cap: Capture,
  port: number,
): KmsClientOptions & { requests: number; newConnection: boolean } {
  const reqs = capturedRequests(cap);
  const first = reqs[0]!;
  const b = first.decoded.body;
  const bindPdu = cap.pdus.find((p) => p.dir === 'c2s' && p.rpc?.ptype === PTYPE.BIND)!;
  const bind = decodePdu(pduBytes(bindPdu));
  if (bind.type !== PTYPE.BIND) throw new Error('no bind');
  const offered = bind.contexts.map((c) => c.transferSyntaxes[0]!.uuid);
  const ivs = reqs.filter((r) => r.decoded.iv).map((r) => r.decoded.iv!);
  return {
    host: '127.0.0.1',
    port,
    sku: b.skuId,
    app: b.applicationId,
    kmsId: b.kmsId,
    protocol: first.decoded.version,
    cmid: b.cmid,
    previousCmid: b.previousCmid,
    workstation: b.workstation,
    requiredCount: b.requiredClientCount,
    licenseStatus: b.licenseStatus,
    bindingExpiration: b.bindingExpiration,
    vm: b.vmInfo !== 0,
    clientTime: b.clientTime,
    ndr64: offered.includes('71710533-beba-4937-8319-b5dbef9ccc36'),
    btfn: offered.some((u) => u.startsWith('6cb71c2c-9812-4540-')),
    multiplex: (bind.flags & PFC.CONC_MPX) !== 0,
    random: new ReplayRandom(ivs),
    requests: reqs.length,
    newConnection: new Set(reqs.map((r) => r.conn)).size > 1,
    timeoutMs: 5000,
  };
}
