/**
 * The memory an in-process fleet's host thread and its client worker share (src/client/fleet-worker.ts):
 * one SharedArrayBuffer holding a batch of up to CAPACITY requests. The host thread writes each
 * request's description (machine, time, license state) and starts the batch; the worker encodes the
 * request stubs into their slots, the host answers each into its response slot, the worker verifies the
 * answers into outcomes. Progress is four counters the two wait on with Atomics (no messages).
 */

import { prepareRequest, type RequestTemplate } from '../kms/exchange.js';
import type { KmsRequestBody } from '../kms/messages.js';
import { fileTimeFromMs } from '../wire/filetime.js';
import { NIL_GUID } from '../wire/guid.js';
import type { ExchangeRequest, FleetPlan } from './fleet.js';

/** Requests per batch at most (a longer batch is sent in parts). */
export const CAPACITY = 1024;
/** Bytes per request or response stub slot: a V6 stub is about 300. */
const SLOT = 1024;
/** Bytes per text slot (an error message, the ePID). */
const TEXT = 1024;
/** ClientExchanges the worker cycles through; it encodes at most LEAD requests ahead of the host. */
export const RING = 4;
export const LEAD = 2;

/** Outcome slot: [kind, count, activationInterval, renewalInterval, hresult]. */
export const OUTCOME = { SIZE: 5, NONE: 0, ANSWERED: 1, REFUSED: 2, FAILED: 3, FAULT: 4 } as const;

export interface FleetWorkerData {
  buffer: SharedArrayBuffer;
  seed: string;
  plan: Pick<FleetPlan, 'machines' | 'products'>;
}

/** A fleet machine's retry interval before a host has answered (minutes; VLActivationInterval's default). */
export const FIRST_RETRY_MIN = 120;

/** The request template of `req`'s machine, prepared on its first request (machine ids index `cache`). */
export function templateFor(cache: (RequestTemplate | undefined)[], req: ExchangeRequest): RequestTemplate {
  let t = cache[req.machine.id];
  if (t === undefined) {
    t = prepareRequest(requestBody(req));
    cache[req.machine.id] = t;
  }
  return t;
}

/** A request's body for a fleet machine (the template its later requests patch). */
function requestBody(req: ExchangeRequest): KmsRequestBody {
  const { machine: m, product: p } = req;
  return {
    minorVersion: 0,
    majorVersion: p.protocol,
    vmInfo: m.vm ? 1 : 0,
    licenseStatus: req.licenseStatus,
    bindingExpiration: req.bindingExpiration,
    applicationId: p.applicationId,
    skuId: p.skuId,
    kmsId: p.kmsId,
    cmid: m.cmid,
    requiredClientCount: p.requiredCount,
    clientTime: fileTimeFromMs(req.now),
    previousCmid: NIL_GUID,
    workstation: m.workstation,
  };
}

export class FleetChannel {
  // ctrl indexes
  /** Incremented by the host thread to start a batch of SIZE requests. */
  static readonly BATCH = 0;
  static readonly SIZE = 1;
  /** Requests encoded, answered and verified so far in the batch. */
  static readonly ENCODED = 2;
  static readonly ANSWERED = 3;
  static readonly VERIFIED = 4;
  /** 1 once the worker failed (its error is in ERROR_SLOT). */
  static readonly FAILED = 5;
  /** Text slots after the per-request ones. */
  static readonly EPID_SLOT = CAPACITY;
  static readonly ERROR_SLOT = CAPACITY + 1;

  readonly ctrl: Int32Array;
  /** Per request: machine id, now, licenseStatus, bindingExpiration. */
  readonly desc: Float64Array;
  readonly outcome: Float64Array;
  private readonly reqLen: Int32Array;
  private readonly reqBytes: Uint8Array;
  private readonly respLen: Int32Array;
  private readonly respBytes: Uint8Array;
  private readonly textLen: Int32Array;
  private readonly text: Uint8Array;

  static create(): FleetChannel {
    const bytes =
      16 * 4 +
      CAPACITY * 4 * 8 +
      CAPACITY * OUTCOME.SIZE * 8 +
      2 * CAPACITY * (4 + SLOT) +
      (CAPACITY + 2) * (4 + TEXT);
    return new FleetChannel(new SharedArrayBuffer(bytes));
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    let at = 0;
    const take = (n: number) => {
      const o = at;
      at += n;
      return o;
    };
    this.ctrl = new Int32Array(buffer, take(64), 16);
    this.desc = new Float64Array(buffer, take(CAPACITY * 32), CAPACITY * 4);
    this.outcome = new Float64Array(buffer, take(CAPACITY * OUTCOME.SIZE * 8), CAPACITY * OUTCOME.SIZE);
    this.reqLen = new Int32Array(buffer, take(CAPACITY * 4), CAPACITY);
    this.respLen = new Int32Array(buffer, take(CAPACITY * 4), CAPACITY);
    this.textLen = new Int32Array(buffer, take((CAPACITY + 2) * 4), CAPACITY + 2);
    this.reqBytes = new Uint8Array(buffer, take(CAPACITY * SLOT), CAPACITY * SLOT);
    this.respBytes = new Uint8Array(buffer, take(CAPACITY * SLOT), CAPACITY * SLOT);
    this.text = new Uint8Array(buffer, take((CAPACITY + 2) * TEXT), (CAPACITY + 2) * TEXT);
  }

  putRequest(i: number, stub: Uint8Array): void {
    putSlot(this.reqBytes, this.reqLen, i, stub, 'request');
  }

  request(i: number): Uint8Array {
    return slot(this.reqBytes, this.reqLen, i);
  }

  putResponse(i: number, stub: Uint8Array): void {
    putSlot(this.respBytes, this.respLen, i, stub, 'response');
  }

  response(i: number): Uint8Array {
    return slot(this.respBytes, this.respLen, i);
  }

  /** UTF-8 into text slot `slot`, cut at the slot's size. */
  putText(slot: number, utf8: Uint8Array): void {
    const n = Math.min(utf8.length, TEXT);
    this.text.set(utf8.subarray(0, n), slot * TEXT);
    Atomics.store(this.textLen, slot, n);
  }

  hasText(slot: number): boolean {
    return Atomics.load(this.textLen, slot) > 0;
  }

  textAt(slot: number): string {
    const n = Atomics.load(this.textLen, slot);
    // TextDecoder does not take views on shared memory: copy first.
    return new TextDecoder().decode(this.text.slice(slot * TEXT, slot * TEXT + n));
  }
}

function putSlot(bytes: Uint8Array, lens: Int32Array, i: number, stub: Uint8Array, what: string): void {
  if (stub.length > SLOT) throw new RangeError(`${what} stub of ${stub.length} bytes > ${SLOT}`);
  bytes.set(stub, i * SLOT);
  lens[i] = stub.length;
}

function slot(bytes: Uint8Array, lens: Int32Array, i: number): Uint8Array {
  return bytes.subarray(i * SLOT, i * SLOT + lens[i]!);
}
