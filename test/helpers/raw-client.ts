/**
 * A small raw KMS client for the end-to-end tests, on node:net and our own codec only (src/rpc for
 * PDUs and framing, src/kms for the envelope and the NDR stub). It is deliberately independent of the
 * full client in src/client: the e2e tests check the host against the codec, not against another
 * implementation of the same client. Deterministic: every random value (CMIDs, IVs) comes from a
 * SeededRandom.
 */
import net from 'node:net';
import { OFFICE2010_APP_ID, OFFICE2013_APP_ID, WINDOWS_APP_ID } from '../../src/catalog/products.js';
import { randomGuid, SeededRandom } from '../../src/host/random.js';
import { encodeRequest, verifyResponse } from '../../src/kms/envelope.js';
import type {
  KmsRequestBody,
  KmsResponseBody,
  KmsVersion,
  NdrSyntax,
  RequestContext,
} from '../../src/kms/messages.js';
import { unwrapResponseStub, wrapRequestStub } from '../../src/kms/stub.js';
import {
  CONTEXT_RESULT,
  DREP_LE,
  KMS_INTERFACE,
  NDR32_SYNTAX,
  NDR64_SYNTAX,
  PFC,
  PTYPE,
  ptypeName,
} from '../../src/rpc/constants.js';
import { decodePdu } from '../../src/rpc/decode.js';
import { encodePdu } from '../../src/rpc/encode.js';
import { Framer } from '../../src/rpc/framer.js';
import {
  type BindAckBody,
  btfnTransferSyntax,
  type Pdu,
  type PresentationContext,
  type TransferSyntax,
  transferSyntax,
} from '../../src/rpc/pdu.js';
import { fileTimeFromMs } from '../../src/wire/filetime.js';
import { type Guid, NIL_GUID } from '../../src/wire/guid.js';

export interface Addr {
  host: string;
  port: number;
}

/** Products used by the tests (ids from the catalog). */
export const PRODUCTS = {
  win10Pro: {
    applicationId: WINDOWS_APP_ID,
    skuId: '2de67392-b7a7-462a-b1ca-108dd189f588',
    kmsId: '58e2134f-8e11-4d17-9cb2-91069c151148',
    requiredClientCount: 25,
  },
  server2019: {
    applicationId: WINDOWS_APP_ID,
    skuId: 'de32eafd-aaee-4662-9444-c1befb41bde2',
    kmsId: '8449b1fb-f0ea-497a-99ab-66ca96e9a0f5',
    requiredClientCount: 5,
  },
  office2010: {
    applicationId: OFFICE2010_APP_ID,
    skuId: '6f327760-8c5c-417c-9b61-836a98287e0c',
    kmsId: 'e85af946-2e25-47b7-83e1-bebcebeac611',
    requiredClientCount: 5,
  },
  office2016: {
    applicationId: OFFICE2013_APP_ID,
    skuId: 'd450596f-894d-49e0-966a-fd39ed4c4c64',
    kmsId: '85b5f61b-320b-4be3-814a-b76b2bfafc82',
    requiredClientCount: 5,
  },
} as const;

export type ProductName = keyof typeof PRODUCTS;

/** A decoded PDU plus the bytes it came from. */
export type ReceivedPdu = Pdu & { bytes: Uint8Array };

/**
 * One TCP connection that cuts what the host sends into PDUs. `nextPdu` and `waitClose` have bounded
 * timeouts so a misbehaving host fails a test instead of hanging it.
 */
export class RawSocket {
  readonly socket: net.Socket;
  private readonly framer = new Framer({ maxPduSize: 0xffff });
  private readonly queue: ReceivedPdu[] = [];
  private waiter: (() => void) | null = null;
  private closedFlag = false;
  /** Resolves when the socket is fully closed (either side). */
  readonly closed: Promise<void>;
  /** Every PDU received, in order. */
  readonly received: ReceivedPdu[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.closedFlag = true;
        this.wake();
        resolve();
      });
    });
    socket.on('error', () => {
      // ECONNRESET and friends: the 'close' event follows; tests look at `isClosed`.
    });
    socket.on('data', (chunk: Buffer) => {
      for (const bytes of this.framer.push(new Uint8Array(chunk))) {
        const pdu = { ...decodePdu(bytes), bytes } as ReceivedPdu;
        this.received.push(pdu);
        this.queue.push(pdu);
      }
      this.wake();
    });
  }

  /** `localAddress`: the client's own address (another loopback one, e.g. 127.0.0.2, is another client). */
  static connect(addr: Addr, localAddress?: string): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: addr.host, port: addr.port, noDelay: true, localAddress });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawSocket(s));
      });
      s.once('error', reject);
    });
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Writes `bytes` `chunk` bytes at a time, yielding to the event loop between writes. */
  async writeSlowly(bytes: Uint8Array, chunk = 1): Promise<void> {
    for (let i = 0; i < bytes.length; i += chunk) {
      this.socket.write(bytes.subarray(i, i + chunk));
      await new Promise((r) => setImmediate(r));
    }
  }

  /** The next PDU from the host; rejects if the connection closes first or after `timeoutMs`. */
  async nextPdu(timeoutMs = 3000): Promise<ReceivedPdu> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = this.queue.shift();
      if (p) return p;
      if (this.closedFlag) throw new Error('connection closed before a PDU arrived');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no PDU within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** PDUs received but not yet taken by `nextPdu`. */
  get pending(): readonly ReceivedPdu[] {
    return this.queue;
  }

  /** Resolves when the host closes the connection; rejects after `timeoutMs`. */
  async waitClose(timeoutMs = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.closed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`connection still open after ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Half-closes our side (FIN). */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------
// PDU builders

export interface BindOffer {
  ndr32?: boolean;
  ndr64?: boolean;
  btfn?: boolean;
  /** Set PFC_CONC_MPX like Windows (default true). */
  concMpx?: boolean;
  /** Interface to bind (default the KMS interface). */
  interfaceUuid?: Guid;
  /** Offer exactly these transfer syntaxes instead (one element each). */
  transferSyntaxes?: TransferSyntax[];
}

/** Presentation contexts numbered 0, 1, 2 … in the order NDR32, NDR64, BTFN (like a Windows 8+ client). */
export function bindContexts(o: BindOffer = {}): PresentationContext[] {
  const ts: TransferSyntax[] =
    o.transferSyntaxes ??
    [
      o.ndr32 !== false ? transferSyntax(NDR32_SYNTAX.uuid, NDR32_SYNTAX.version) : null,
      o.ndr64 !== false ? transferSyntax(NDR64_SYNTAX.uuid, NDR64_SYNTAX.version) : null,
      o.btfn !== false ? btfnTransferSyntax(0x03) : null,
    ].filter((t): t is TransferSyntax => t !== null);
  return ts.map((t, i) => ({
    contextId: i,
    abstractSyntax: {
      uuid: o.interfaceUuid ?? KMS_INTERFACE.uuid,
      versionMajor: KMS_INTERFACE.versionMajor,
      versionMinor: KMS_INTERFACE.versionMinor,
    },
    transferSyntaxes: [t],
  }));
}

export function bindBytes(callId: number, o: BindOffer = {}): Uint8Array {
  return encodePdu({
    type: PTYPE.BIND,
    flags: PFC.FIRST_FRAG | PFC.LAST_FRAG | (o.concMpx === false ? 0 : PFC.CONC_MPX),
    callId,
    rpcVersionMinor: 0,
    drep: DREP_LE,
    maxXmitFrag: 5840,
    maxRecvFrag: 5840,
    assocGroupId: 0,
    contexts: bindContexts(o),
  });
}

export function alterContextBytes(callId: number, contexts: PresentationContext[]): Uint8Array {
  return encodePdu({
    type: PTYPE.ALTER_CONTEXT,
    flags: PFC.FIRST_FRAG | PFC.LAST_FRAG,
    callId,
    rpcVersionMinor: 0,
    drep: DREP_LE,
    maxXmitFrag: 5840,
    maxRecvFrag: 5840,
    assocGroupId: 0,
    contexts,
  });
}

export function requestBytes(
  callId: number,
  contextId: number,
  stub: Uint8Array,
  o: { opnum?: number; flags?: number } = {},
): Uint8Array {
  return encodePdu({
    type: PTYPE.REQUEST,
    flags: o.flags ?? PFC.FIRST_FRAG | PFC.LAST_FRAG,
    callId,
    rpcVersionMinor: 0,
    drep: DREP_LE,
    allocHint: stub.length,
    contextId,
    opnum: o.opnum ?? 0,
    stub,
  });
}

/** p_cont_id → syntax of the contexts a bind_ack / alter_context_resp accepted, given what was offered. */
export function acceptedContexts(offered: PresentationContext[], ack: BindAckBody): Map<number, NdrSyntax> {
  const out = new Map<number, NdrSyntax>();
  ack.results.forEach((r, i) => {
    const c = offered[i];
    if (!c || r.result !== CONTEXT_RESULT.ACCEPTANCE) return;
    if (r.transferSyntax.uuid === NDR64_SYNTAX.uuid) out.set(c.contextId, 'ndr64');
    else if (r.transferSyntax.uuid === NDR32_SYNTAX.uuid) out.set(c.contextId, 'ndr32');
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// KMS requests

export interface RequestSpec extends Partial<KmsRequestBody> {
  product?: ProductName;
  /** Protocol major version (default 6). */
  version?: KmsVersion;
}

/** A base request with the defaults of a fresh Windows 10 Pro VM, overridable field by field. */
export function requestBody(
  random: SeededRandom,
  spec: RequestSpec = {},
  nowMs = Date.UTC(2026, 0, 1),
): KmsRequestBody {
  const p = PRODUCTS[spec.product ?? 'win10Pro'];
  const { product: _p, version, ...fields } = spec;
  return {
    minorVersion: 0,
    majorVersion: version ?? 6,
    vmInfo: 0,
    licenseStatus: 2,
    bindingExpiration: 43_200,
    applicationId: p.applicationId,
    skuId: p.skuId,
    kmsId: p.kmsId,
    cmid: randomGuid(random),
    requiredClientCount: p.requiredClientCount,
    clientTime: fileTimeFromMs(nowMs),
    previousCmid: NIL_GUID,
    workstation: 'raw-client.example.test',
    ...fields,
  };
}

/** The NDR stub of a RequestActivation call, and what the client keeps to verify the answer. */
export function activationStub(
  body: KmsRequestBody,
  ndr: NdrSyntax,
  random: SeededRandom,
): { stub: Uint8Array; context: RequestContext } {
  const { message, context } = encodeRequest(body, { random: (n) => random.bytes(n) });
  return { stub: wrapRequestStub(message, ndr), context };
}

export interface ActivationResult {
  /** The PDU the host answered with (response or fault). */
  pdu: ReceivedPdu;
  ptype: number;
  /** HRESULT of a response PDU; null for a fault. */
  hresult: number | null;
  /** Fault status of a fault PDU; null for a response. */
  faultStatus: number | null;
  /** The verified response body when the host answered S_OK. */
  body: KmsResponseBody | null;
  hwid: Uint8Array | null;
  ndr: NdrSyntax;
  request: KmsRequestBody;
}

/** Reads a response/fault PDU for a call and verifies it completely (spec b.2, b.3, c.2–c.6). */
export function readAnswer(
  pdu: ReceivedPdu,
  ndr: NdrSyntax,
  context: RequestContext,
  request: KmsRequestBody,
): ActivationResult {
  const base = { pdu, ptype: pdu.type, ndr, request };
  if (pdu.type === PTYPE.FAULT) {
    return { ...base, hresult: null, faultStatus: pdu.status, body: null, hwid: null };
  }
  if (pdu.type !== PTYPE.RESPONSE) throw new Error(`expected a response, got ${ptypeName(pdu.type)}`);
  const { hresult, message } = unwrapResponseStub(pdu.stub, ndr);
  if (!message) return { ...base, hresult, faultStatus: null, body: null, hwid: null };
  const v = verifyResponse(message, context);
  return { ...base, hresult, faultStatus: null, body: v.body, hwid: v.hwid };
}

export interface RawClientOptions extends BindOffer {
  /** Seed for CMIDs and IVs (default 'raw-client'). */
  seed?: string | number;
  /** ClientTime of requests, ms since the epoch (default 2026-01-01, the ManualClock's default start). */
  nowMs?: number;
  /** The client's own loopback address (default: the system's choice, 127.0.0.1). */
  localAddress?: string;
}

/**
 * A bound connection that sends activation requests, like a minimal Windows client: bind with the
 * chosen contexts, then requests on an accepted context (the requested syntax if accepted).
 */
export class RawKmsClient {
  readonly conn: RawSocket;
  readonly random: SeededRandom;
  readonly contexts = new Map<number, NdrSyntax>();
  bindAck: ReceivedPdu | null = null;
  private callId = 2;
  private readonly opts: RawClientOptions;

  private constructor(conn: RawSocket, opts: RawClientOptions) {
    this.conn = conn;
    this.opts = opts;
    this.random = new SeededRandom(opts.seed ?? 'raw-client');
  }

  /** Connects and binds. Throws if the host does not answer the bind with a bind_ack. */
  static async connect(addr: Addr, opts: RawClientOptions = {}): Promise<RawKmsClient> {
    const c = new RawKmsClient(await RawSocket.connect(addr, opts.localAddress), opts);
    try {
      await c.bind();
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  private async bind(): Promise<void> {
    const offered = bindContexts(this.opts);
    this.conn.write(bindBytes(this.callId, this.opts));
    const ack = await this.conn.nextPdu();
    if (ack.type !== PTYPE.BIND_ACK) throw new Error(`bind answered with ${ptypeName(ack.type)}`);
    this.bindAck = ack;
    for (const [id, s] of acceptedContexts(offered, ack)) this.contexts.set(id, s);
  }

  nextCallId(): number {
    this.callId += 1;
    return this.callId;
  }

  /** Context id to use for `ndr` (or any accepted one when `ndr` is undefined). */
  contextFor(ndr?: NdrSyntax): { id: number; ndr: NdrSyntax } {
    for (const [id, s] of this.contexts) if (ndr === undefined || s === ndr) return { id, ndr: s };
    throw new Error(`no accepted ${ndr ?? ''} context (accepted: ${[...this.contexts.values()].join(', ')})`);
  }

  body(spec: RequestSpec = {}): KmsRequestBody {
    return requestBody(this.random, spec, this.opts.nowMs);
  }

  /** One RequestActivation call on this connection. */
  async activate(spec: RequestSpec = {}, ndr?: NdrSyntax): Promise<ActivationResult> {
    const ctx = this.contextFor(ndr);
    const request = this.body(spec);
    const { stub, context } = activationStub(request, ctx.ndr, this.random);
    const callId = this.nextCallId();
    this.conn.write(requestBytes(callId, ctx.id, stub));
    const pdu = await this.conn.nextPdu();
    if (pdu.callId !== callId) throw new Error(`answer echoes call_id ${pdu.callId}, sent ${callId}`);
    return readAnswer(pdu, ctx.ndr, context, request);
  }

  close(): void {
    this.conn.destroy();
  }
}

/** Connects, binds, sends one request and closes. */
export async function activateOnce(
  addr: Addr,
  spec: RequestSpec = {},
  opts: RawClientOptions = {},
): Promise<ActivationResult> {
  const c = await RawKmsClient.connect(addr, opts);
  try {
    return await c.activate(spec);
  } finally {
    c.close();
  }
}
