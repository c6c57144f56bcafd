/**
 * KMS client emulator: connects to a KMS host over TCP, binds the way Windows does, sends V4/V5/V6
 * activation requests and verifies every answer completely (spec a, b, c; client side).
 *
 * Randomness (CMID, V5/V6 IVs) comes only from the injected Random; the request time stamp only from
 * the injected Clock (or a fixed `clientTime`). Nothing here touches process state: a failure is a
 * result with `error`, never a throw, once the options were accepted.
 */
import { randomBytes } from 'node:crypto';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { type Catalog, defaultCatalog, type Sku } from '../catalog/products.js';
import { type Clock, SystemClock } from '../host/clock.js';
import { type Random, randomGuid, SeededRandom } from '../host/random.js';
import { ClientExchange, prepareRequest, type RequestTemplate } from '../kms/exchange.js';
import { HResult, hresultHex, hresultText } from '../kms/hresult.js';
import type { KmsVersion, NdrSyntax } from '../kms/messages.js';
import {
  BIND_NAK_REASON,
  BTFN_KEEP_CONNECTION_ON_ORPHAN,
  BTFN_SECURITY_CONTEXT_MULTIPLEXING,
  CONTEXT_RESULT,
  DREP_LE,
  HOST_MAX_FRAG,
  KMS_INTERFACE,
  NCA_STATUS,
  NDR32_SYNTAX,
  NDR64_SYNTAX,
  PFC,
  PROVIDER_REASON,
  PTYPE,
  ptypeName,
  RPC_VERSION_MINOR,
} from '../rpc/constants.js';
import { decodePdu } from '../rpc/decode.js';
import { encodePdu } from '../rpc/encode.js';
import { Framer } from '../rpc/framer.js';
import type {
  AlterContextPdu,
  BindAckBody,
  BindPdu,
  Pdu,
  PresentationContext,
  RequestPdu,
  TransferSyntax,
} from '../rpc/pdu.js';
import { btfnTransferSyntax, transferSyntax } from '../rpc/pdu.js';
import { isProtocolError, ProtocolError } from '../wire/errors.js';
import { type FileTime, fileTimeFromMs } from '../wire/filetime.js';
import { type Guid, NIL_GUID, parseGuid } from '../wire/guid.js';
import { hex } from '../wire/utf16.js';

export const DEFAULT_KMS_PORT = 1688;
export const DEFAULT_TIMEOUT_MS = 10_000;
/** BindingExpiration (minutes left in the license state) vlmcs and a fresh Windows install send: 30 days. */
const DEFAULT_BINDING_EXPIRATION = 43_200;
/** LicenseStatus 2 = out-of-box grace (spec c.1). */
const DEFAULT_LICENSE_STATUS = 2;
/** The product used when neither a product nor a SKU is given: Windows 10/11 Enterprise. */
const DEFAULT_SKU_ID: Guid = '73111121-5638-40f6-bc11-f1d7b0d64300';
/** The first call_id Windows and vlmcs use (vlmcsd/CAPTURES.md: "call_id of the first bind is 2"). */
const FIRST_CALL_ID = 2;
/** Windows' BTFN bitmask: security context multiplexing + keep connection on orphan (spec a.3). */
const WINDOWS_BTFN_BITMASK = BTFN_SECURITY_CONTEXT_MULTIPLEXING | BTFN_KEEP_CONNECTION_ON_ORPHAN;

// ---------------------------------------------------------------------------------------------------
// Errors and results

/**
 * transport: the socket (refused, reset, closed, timeout). rpc: the host refused at the RPC level
 * (bind_nak, every context rejected, fault PDU). verification: an answer failed a check (PDU type,
 * call_id or context echo, NDR stub layout, KMS message MAC / hash / HMAC / echoes / ePID).
 */
export type FailureKind = 'transport' | 'rpc' | 'verification';

export interface FailureInfo {
  kind: FailureKind;
  /** A ProtocolErrorCode for verification failures, else a client code such as TIMEOUT or FAULT. */
  code: string;
  message: string;
  field?: string;
  /** Fault PDUs: the NCA status and its name. */
  ncaStatus?: number;
  ncaName?: string;
}

export class KmsClientError extends Error {
  override readonly name = 'KmsClientError';
  readonly kind: FailureKind;
  readonly code: string;
  readonly field: string | undefined;
  readonly ncaStatus: number | undefined;
  readonly ncaName: string | undefined;

  constructor(
    kind: FailureKind,
    code: string,
    message: string,
    detail: { field?: string | undefined; ncaStatus?: number; ncaName?: string } = {},
  ) {
    super(message);
    this.kind = kind;
    this.code = code;
    this.field = detail.field;
    this.ncaStatus = detail.ncaStatus;
    this.ncaName = detail.ncaName;
  }

  info(): FailureInfo {
    const out: FailureInfo = { kind: this.kind, code: this.code, message: this.message };
    if (this.field !== undefined) out.field = this.field;
    if (this.ncaStatus !== undefined) out.ncaStatus = this.ncaStatus;
    if (this.ncaName !== undefined) out.ncaName = this.ncaName;
    return out;
  }
}

/** One activation request and what came of it. */
export interface ActivationResult {
  protocol: KmsVersion;
  host: string;
  port: number;
  epid: string | null;
  /** V6 only: the host's 8-byte hardware id as 16 upper-case hex digits. */
  hwid: string | null;
  count: number | null;
  /** The threshold this client sent (N_Policy) and compares the count with. */
  requiredCount: number;
  activationInterval: number | null;
  renewalInterval: number | null;
  /** Verified answer with count ≥ requiredCount. */
  activated: boolean;
  /**
   * 0 when activated; the host's error HRESULT; 0xC004F038 when the count is insufficient; 0xC004F074
   * when the host could not be used (transport, RPC or verification failure, see `error`).
   */
  hresult: number;
  hresultText: string;
  cmid: Guid;
  ndr: NdrSyntax | null;
  callId: number | null;
  /** V6: the HMAC time slot (−1, 0, +1) that matched. */
  hmacSlot?: number;
  error?: FailureInfo;
}

/** How the client side of a result is classified: exit code 0, 2 or 3 of the CLI. */
export function resultStatus(r: ActivationResult): 'activated' | 'refused' | 'failed' {
  if (r.error) return 'failed';
  return r.activated ? 'activated' : 'refused';
}

// ---------------------------------------------------------------------------------------------------
// Options

export interface ProductSelection {
  /** A catalog product name ("Windows 10 Enterprise") or SKU GUID. */
  product?: string;
  /** Raw SKU (ActivationId). Known SKUs supply their application and KMS id. */
  sku?: string;
  /** Raw ApplicationId; overrides the SKU's. */
  app?: string;
  /** Raw KmsCountedId; overrides the SKU's. */
  kmsId?: string;
}

interface ClientIdentityOptions extends ProductSelection {
  /** KMS protocol major version; default: the KMS id's protocolVersion (6 for unknown ids). */
  protocol?: KmsVersion;
  /** Client machine id; default a random GUID drawn from `random`. */
  cmid?: string;
  previousCmid?: string;
  /** Default: this machine's host name (at most 63 UTF-16 units). */
  workstation?: string;
  /** N_Policy; default the KMS id's nPolicy (25 for unknown ids). */
  requiredCount?: number;
  /** Default 2 (OOB grace). */
  licenseStatus?: number;
  /** Minutes left in the license state; default 43200. */
  bindingExpiration?: number;
  vm?: boolean;
  /** Fixed request time stamp (FILETIME or Date); default `clock.now()` at each request. */
  clientTime?: FileTime | Date;
}

interface ConnectionOptions {
  host: string;
  port?: number;
  /** Offer NDR64 (ctx 1) beside NDR32 (ctx 0). Default true. */
  ndr64?: boolean;
  /** Offer bind-time feature negotiation. Default true. */
  btfn?: boolean;
  /** Set PFC_CONC_MPX on bind and alter_context (flags 0x13, else 0x03). Default true. */
  multiplex?: boolean;
  /** Per operation: connect, and each answer awaited. Default 10 s. */
  timeoutMs?: number;
}

export interface KmsClientOptions extends ClientIdentityOptions, ConnectionOptions {
  /**
   * Check the answered ePID's format and bounds (spec e.1: PPPPP-GGGGG-KKK-KKKKKK-03-LCID-BUILD.0000-
   * DDDYYYY, activation day 1..366) and fail with BAD_EPID otherwise. Default true; false accepts any
   * string, for hosts configured with a free-form ePID.
   */
  checkEpid?: boolean;
  random?: Random;
  clock?: Clock;
  catalog?: Catalog;
}

export interface ActivateOptions extends KmsClientOptions {
  /** Requests to send (default 1). */
  requests?: number;
  /** A new TCP connection (and bind) for every request. Default false: one connection for all. */
  newConnection?: boolean;
}

export interface ResolvedProduct {
  /** Catalog name of the SKU, or null for a SKU the catalog does not know. */
  name: string | null;
  skuId: Guid;
  applicationId: Guid;
  kmsId: Guid;
  protocol: KmsVersion;
  requiredCount: number;
}

function badOption(message: string): never {
  throw new ProtocolError('BAD_VALUE', message);
}

function u32Option(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
    badOption(`${name} must be an integer in 0..4294967295`);
  return v;
}

/** Product resolution of the `activate` options; throws ProtocolError('BAD_VALUE') with a clear message. */
export function resolveProduct(
  opts: ProductSelection & { protocol?: number; requiredCount?: number },
  catalog: Catalog = defaultCatalog(),
): ResolvedProduct {
  if (opts.product !== undefined && opts.sku !== undefined)
    badOption('give either a product or a SKU, not both');
  let sku: Sku | undefined;
  let skuId: Guid;
  if (opts.product !== undefined) {
    sku = catalog.findSku(opts.product);
    skuId = sku.id;
  } else if (opts.sku !== undefined) {
    skuId = parseGuid(opts.sku);
    sku = catalog.sku(skuId);
  } else {
    sku = catalog.sku(DEFAULT_SKU_ID);
    skuId = DEFAULT_SKU_ID;
  }
  const kmsId = opts.kmsId !== undefined ? parseGuid(opts.kmsId) : sku?.kmsId;
  const info = (kmsId ? catalog.kmsId(kmsId) : undefined) ?? (sku ? catalog.kmsId(sku.kmsId) : undefined);
  const applicationId =
    opts.app !== undefined ? parseGuid(opts.app) : (sku?.applicationId ?? info?.applicationId);
  if (kmsId === undefined || applicationId === undefined) {
    badOption(`SKU ${skuId} is not in the catalog: give its application id and KMS id too`);
  }
  const protocol = opts.protocol ?? info?.protocolVersion ?? 6;
  if (protocol !== 4 && protocol !== 5 && protocol !== 6) badOption(`protocol ${protocol}: use 4, 5 or 6`);
  const requiredCount = u32Option(opts.requiredCount ?? info?.nPolicy ?? 25, 'requiredCount');
  return { name: sku?.name ?? null, skuId, applicationId, kmsId, protocol, requiredCount };
}

/** A Random seeded from the OS, for callers that did not inject one. */
export function defaultRandom(): SeededRandom {
  return new SeededRandom(randomBytes(4).readUInt32LE(0));
}

export interface HostPort {
  host: string;
  port: number;
}

export interface HostPortRules {
  /** Host for `:PORT` (listen addresses); without it a host is required. */
  defaultHost?: string;
  /** Accept port 0 (listen on an ephemeral port). */
  allowPortZero?: boolean;
}

/**
 * `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT`, or a bare IPv6 literal (`::1`, default port). Throws
 * ProtocolError('BAD_VALUE'). The one parser of host:port text for connecting and listening alike.
 */
export function parseHostPort(s: string, defaultPort: number, rules: HostPortRules = {}): HostPort {
  const t = s.trim();
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(t);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
    if (isIP(host) !== 6) badOption(`"${s}": only an IPv6 literal goes inside [ ]`);
  } else if (t.includes(':') && t.indexOf(':') !== t.lastIndexOf(':')) {
    if (isIP(t) !== 6) badOption(`"${s}" is not an IPv6 address; write [ADDRESS]:PORT`);
    host = t;
  } else {
    const i = t.indexOf(':');
    host = i < 0 ? t : t.slice(0, i);
    portText = i < 0 ? undefined : t.slice(i + 1);
  }
  if (host.length === 0) {
    if (rules.defaultHost === undefined) badOption(`"${s}": no host`);
    host = rules.defaultHost;
  }
  if (portText === undefined || (portText === '' && rules.defaultHost !== undefined)) {
    return { host, port: defaultPort };
  }
  const low = rules.allowPortZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < low || Number(portText) > 65535) {
    badOption(`"${s}": port must be ${low}..65535`);
  }
  return { host, port: Number(portText) };
}

export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

// ---------------------------------------------------------------------------------------------------
// Names for diagnostics

const NCA_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(NCA_STATUS).map(([k, v]) => [v >>> 0, `nca_s_${k.toLowerCase()}`] as const),
);

/** `nca_s_unk_if (0x1C010003)`, or the bare hex for a status we cannot name. */
function ncaStatusName(status: number): string {
  const name = NCA_NAMES.get(status >>> 0);
  return name ? `${name} (${hresultHex(status)})` : `status ${hresultHex(status)}`;
}

function reverseName(table: Record<string, number>, v: number): string {
  const e = Object.entries(table).find(([, x]) => x === v);
  return e ? e[0].toLowerCase() : `${v}`;
}

// ---------------------------------------------------------------------------------------------------
// One TCP connection carrying RPC PDUs

function transportError(e: unknown, where: string): KmsClientError {
  const err = e as NodeJS.ErrnoException;
  const codes: Record<string, string> = {
    ECONNREFUSED: 'CONNECTION_REFUSED',
    ECONNRESET: 'CONNECTION_RESET',
    EPIPE: 'CONNECTION_RESET',
    ETIMEDOUT: 'TIMEOUT',
    ENOTFOUND: 'HOST_NOT_FOUND',
    EAI_AGAIN: 'HOST_NOT_FOUND',
    EHOSTUNREACH: 'HOST_UNREACHABLE',
    ENETUNREACH: 'HOST_UNREACHABLE',
  };
  const code = (err.code && codes[err.code]) || 'CONNECTION_ERROR';
  return new KmsClientError('transport', code, `${where}: ${err.message ?? String(e)}`);
}

function asFailure(e: unknown): KmsClientError {
  if (e instanceof KmsClientError) return e;
  if (isProtocolError(e)) return new KmsClientError('verification', e.code, e.message, { field: e.field });
  return new KmsClientError('transport', 'INTERNAL', e instanceof Error ? e.message : String(e));
}

class RpcConnection {
  private readonly framer = new Framer({ maxPduSize: HOST_MAX_FRAG });
  private readonly queue: Uint8Array[] = [];
  private failure: KmsClientError | null = null;
  private wake: (() => void) | null = null;

  private constructor(
    private readonly socket: Socket,
    readonly remote: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const pdu of this.framer.push(chunk)) this.queue.push(pdu);
        if (this.framer.error) this.fail(asFailure(this.framer.error));
      } catch (e) {
        this.fail(asFailure(e));
      }
      this.notify();
    });
    socket.on('end', () => {
      this.fail(new KmsClientError('transport', 'CONNECTION_CLOSED', `${remote} closed the connection`));
    });
    socket.on('error', (e) => this.fail(transportError(e, remote)));
    socket.on('close', () => {
      this.fail(new KmsClientError('transport', 'CONNECTION_CLOSED', `the connection to ${remote} closed`));
    });
  }

  static open(host: string, port: number, timeoutMs: number): Promise<RpcConnection> {
    const remote = formatHostPort(host, port);
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new KmsClientError(
            'transport',
            'TIMEOUT',
            `connecting to ${remote}: no answer within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const onError = (e: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(transportError(e, `connecting to ${remote}`));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve(new RpcConnection(socket, remote));
      });
    });
  }

  /** Whether the connection can still carry a call (the host has not closed it, no error seen). */
  get usable(): boolean {
    return this.failure === null && !this.socket.destroyed;
  }

  private fail(e: KmsClientError): void {
    this.failure ??= e;
    if (e.kind !== 'transport') this.socket.destroy();
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  send(bytes: Uint8Array): void {
    if (this.failure) throw this.failure;
    this.socket.write(bytes);
  }

  /** The next whole PDU, or the connection's failure, or TIMEOUT after `timeoutMs` in all. */
  async next(timeoutMs: number, what: string): Promise<Uint8Array> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const pdu = this.queue.shift();
      if (pdu) return pdu;
      if (this.failure) throw this.failure;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new KmsClientError(
          'transport',
          'TIMEOUT',
          `no ${what} from ${this.remote} within ${timeoutMs} ms`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = null;
          resolve();
        }, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  close(): void {
    this.failure ??= new KmsClientError('transport', 'CONNECTION_CLOSED', 'the client closed the connection');
    this.socket.destroy();
    this.notify();
  }
}

// ---------------------------------------------------------------------------------------------------
// The client

interface Binding {
  conn: RpcConnection;
  /** Context ids usable for requests, per transfer syntax. */
  ndr32: number | null;
  ndr64: number | null;
  /** Requests sent on this connection so far. */
  requests: number;
}

/** What the bind (and alter_context) agreed. */
export interface BindInfo {
  ndr32Context: number | null;
  ndr64Context: number | null;
  /** Whether an alter_context was needed to get NDR32 (a host that prefers NDR64). */
  alteredContext: boolean;
  btfnAcknowledged: number | null;
  assocGroupId: number;
}

const KMS_ABSTRACT = {
  uuid: KMS_INTERFACE.uuid,
  versionMajor: KMS_INTERFACE.versionMajor,
  versionMinor: KMS_INTERFACE.versionMinor,
};

function context(contextId: number, ts: TransferSyntax): PresentationContext {
  return { contextId, abstractSyntax: { ...KMS_ABSTRACT }, transferSyntaxes: [ts] };
}

const NDR32_TS = (): TransferSyntax => transferSyntax(NDR32_SYNTAX.uuid, NDR32_SYNTAX.version);
const NDR64_TS = (): TransferSyntax => transferSyntax(NDR64_SYNTAX.uuid, NDR64_SYNTAX.version);

function verificationError(code: string, message: string, field?: string): KmsClientError {
  return new KmsClientError('verification', code, message, { field });
}

/**
 * A request's result before (or without) a host's answer: nothing from a host, HRESULT 0xC004F074.
 * The client fills it in as the exchange goes; discovery returns it when no host answered.
 */
export function unansweredResult(
  product: ResolvedProduct,
  cmid: Guid,
  host: string,
  port: number,
): ActivationResult {
  return {
    protocol: product.protocol,
    host,
    port,
    epid: null,
    hwid: null,
    count: null,
    requiredCount: product.requiredCount,
    activationInterval: null,
    renewalInterval: null,
    activated: false,
    hresult: HResult.NO_KMS,
    hresultText: hresultText(HResult.NO_KMS),
    cmid,
    ndr: null,
    callId: null,
  };
}

export class KmsClient {
  readonly host: string;
  readonly port: number;
  readonly product: ResolvedProduct;
  readonly cmid: Guid;
  readonly previousCmid: Guid;
  readonly workstation: string;
  readonly licenseStatus: number;
  readonly bindingExpiration: number;
  readonly vm: boolean;
  readonly ndr64: boolean;
  readonly btfn: boolean;
  readonly checkEpid: boolean;
  readonly multiplex: boolean;
  readonly timeoutMs: number;
  private readonly random: Random;
  private readonly clock: Clock;
  private readonly fixedTime: FileTime | null;
  /** The request, prepared once, and the one client exchange (spec c) that encodes and verifies it. */
  private readonly template: RequestTemplate;
  private readonly kms: ClientExchange;
  private callId = FIRST_CALL_ID;
  private binding: Binding | null = null;
  private lastBind: BindInfo | null = null;

  /** Throws ProtocolError('BAD_VALUE') for options that cannot make a request. */
  constructor(opts: KmsClientOptions) {
    this.host = opts.host;
    this.port = opts.port ?? DEFAULT_KMS_PORT;
    if (!Number.isInteger(this.port) || this.port < 1 || this.port > 65535) badOption(`port ${this.port}`);
    this.product = resolveProduct(opts, opts.catalog);
    this.random = opts.random ?? defaultRandom();
    this.clock = opts.clock ?? new SystemClock();
    this.cmid = opts.cmid !== undefined ? parseGuid(opts.cmid) : randomGuid(this.random);
    this.previousCmid = opts.previousCmid !== undefined ? parseGuid(opts.previousCmid) : NIL_GUID;
    this.workstation = opts.workstation ?? hostname().slice(0, 63);
    if (this.workstation.length > 63) badOption('workstation name: at most 63 UTF-16 units');
    this.licenseStatus = u32Option(opts.licenseStatus ?? DEFAULT_LICENSE_STATUS, 'licenseStatus');
    this.bindingExpiration = u32Option(
      opts.bindingExpiration ?? DEFAULT_BINDING_EXPIRATION,
      'bindingExpiration',
    );
    this.vm = opts.vm ?? false;
    this.ndr64 = opts.ndr64 ?? true;
    this.btfn = opts.btfn ?? true;
    this.checkEpid = opts.checkEpid ?? true;
    this.multiplex = opts.multiplex ?? true;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) badOption(`timeout ${this.timeoutMs} ms`);
    const t = opts.clientTime;
    this.fixedTime = t === undefined ? null : typeof t === 'bigint' ? t : fileTimeFromMs(t.getTime());
    this.kms = new ClientExchange({ checkEpid: this.checkEpid });
    this.template = prepareRequest({
      minorVersion: 0,
      majorVersion: this.product.protocol,
      vmInfo: this.vm ? 1 : 0,
      licenseStatus: this.licenseStatus,
      bindingExpiration: this.bindingExpiration,
      applicationId: this.product.applicationId,
      skuId: this.product.skuId,
      kmsId: this.product.kmsId,
      cmid: this.cmid,
      requiredClientCount: this.product.requiredCount,
      clientTime: 0n,
      previousCmid: this.previousCmid,
      workstation: this.workstation,
    });
  }

  /** What the last bind agreed, or null before the first. */
  get bindInfo(): BindInfo | null {
    return this.lastBind;
  }

  get remote(): string {
    return formatHostPort(this.host, this.port);
  }

  /** Opens the connection and binds, unless a usable one is open. Throws KmsClientError. */
  async connect(): Promise<BindInfo> {
    if (this.binding?.conn.usable && this.lastBind) return this.lastBind;
    this.close();
    const conn = await RpcConnection.open(this.host, this.port, this.timeoutMs);
    try {
      const info = await this.bind(conn);
      this.binding = { conn, ndr32: info.ndr32Context, ndr64: info.ndr64Context, requests: 0 };
      this.lastBind = info;
      return info;
    } catch (e) {
      conn.close();
      throw asFailure(e);
    }
  }

  /** Closes the connection (the next request opens a new one). */
  close(): void {
    this.binding?.conn.close();
    this.binding = null;
  }

  /** `await using client = new KmsClient(...)` closes the connection at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private async exchange(conn: RpcConnection, pdu: Pdu, what: string): Promise<Pdu> {
    conn.send(encodePdu(pdu));
    return decodePdu(await conn.next(this.timeoutMs, what));
  }

  private async bind(conn: RpcConnection): Promise<BindInfo> {
    const callId = this.callId;
    const flags = PFC.FIRST_FRAG | PFC.LAST_FRAG | (this.multiplex ? PFC.CONC_MPX : 0);
    const contexts: PresentationContext[] = [context(0, NDR32_TS())];
    if (this.ndr64) contexts.push(context(contexts.length, NDR64_TS()));
    if (this.btfn) contexts.push(context(contexts.length, btfnTransferSyntax(WINDOWS_BTFN_BITMASK)));
    const bind: BindPdu = {
      type: PTYPE.BIND,
      flags,
      callId,
      rpcVersionMinor: RPC_VERSION_MINOR,
      drep: DREP_LE,
      maxXmitFrag: HOST_MAX_FRAG,
      maxRecvFrag: HOST_MAX_FRAG,
      assocGroupId: 0,
      contexts,
    };
    const ack = await this.exchange(conn, bind, 'bind_ack');
    if (ack.type === PTYPE.BIND_NAK) {
      throw new KmsClientError(
        'rpc',
        'BIND_NAK',
        `the host refused the bind: bind_nak ${reverseName(BIND_NAK_REASON, ack.rejectReason)}`,
      );
    }
    if (ack.type === PTYPE.FAULT) throw faultError(ack.status, 'bind');
    if (ack.type !== PTYPE.BIND_ACK) {
      throw verificationError('UNEXPECTED_PDU', `expected bind_ack, got ${ptypeName(ack.type)}`, 'PTYPE');
    }
    checkCallId(ack.callId, callId, 'bind_ack');
    const accepted = acceptedContexts(ack, contexts, 'bind_ack');
    let ndr32 = accepted.ndr32;
    const ndr64 = accepted.ndr64;
    let alteredContext = false;
    if (ndr32 === null && ndr64 !== null) {
      // A host that prefers NDR64 rejected NDR32; Windows then asks for NDR32 again on ctx 0 with an
      // alter_context and sends its first request in NDR32 (captures: v6-win10 and all vlmcs defaults).
      const alterCtx = [context(0, NDR32_TS())];
      const alter: AlterContextPdu = { ...bind, type: PTYPE.ALTER_CONTEXT, contexts: alterCtx };
      const resp = await this.exchange(conn, alter, 'alter_context_resp');
      if (resp.type === PTYPE.FAULT) throw faultError(resp.status, 'alter_context');
      if (resp.type !== PTYPE.ALTER_CONTEXT_RESP) {
        throw verificationError(
          'UNEXPECTED_PDU',
          `expected alter_context_resp, got ${ptypeName(resp.type)}`,
          'PTYPE',
        );
      }
      checkCallId(resp.callId, callId, 'alter_context_resp');
      ndr32 = acceptedContexts(resp, alterCtx, 'alter_context_resp').ndr32;
      alteredContext = true;
    }
    if (ndr32 === null && ndr64 === null) {
      const why = ack.results
        .map((r) => `${reverseName(CONTEXT_RESULT, r.result)}/${reverseName(PROVIDER_REASON, r.reason)}`)
        .join(', ');
      throw new KmsClientError(
        'rpc',
        'BIND_REJECTED',
        `the host accepted no KMS presentation context (${why})`,
      );
    }
    return {
      ndr32Context: ndr32,
      ndr64Context: ndr64,
      alteredContext,
      btfnAcknowledged: accepted.btfn,
      assocGroupId: ack.assocGroupId,
    };
  }

  private requestTime(): FileTime {
    return this.fixedTime ?? fileTimeFromMs(this.clock.now());
  }

  private baseResult(): ActivationResult {
    return unansweredResult(this.product, this.cmid, this.host, this.port);
  }

  /**
   * Sends one activation request (connecting and binding first if needed) and returns its verified
   * outcome. Never throws: failures are results with `error` (and the connection is dropped).
   */
  async activateOnce(): Promise<ActivationResult> {
    const result = this.baseResult();
    try {
      await this.connect();
      const b = this.binding!;
      const ndr: NdrSyntax =
        b.requests === 0 && b.ndr32 !== null ? 'ndr32' : b.ndr64 !== null ? 'ndr64' : 'ndr32';
      const contextId = (ndr === 'ndr32' ? b.ndr32 : b.ndr64)!;
      const callId = this.callId++;
      b.requests++;
      result.ndr = ndr;
      result.callId = callId;
      this.kms.encode(this.template, this.requestTime(), this.random);
      const stub = this.kms.requestStub(ndr);
      const req: RequestPdu = {
        type: PTYPE.REQUEST,
        flags: PFC.FIRST_FRAG | PFC.LAST_FRAG,
        callId,
        rpcVersionMinor: RPC_VERSION_MINOR,
        drep: DREP_LE,
        allocHint: stub.length,
        contextId,
        opnum: 0,
        stub,
      };
      const resp = await this.exchange(b.conn, req, 'response');
      this.interpret(resp, callId, contextId, ndr, result);
    } catch (e) {
      const f = asFailure(e);
      result.error = f.info();
      result.activated = false;
      result.hresult = HResult.NO_KMS;
      result.hresultText = hresultText(HResult.NO_KMS);
      this.close();
    }
    return result;
  }

  /** Checks a response PDU completely and fills `result`; throws KmsClientError on any failure. */
  private interpret(
    resp: Pdu,
    callId: number,
    contextId: number,
    ndr: NdrSyntax,
    result: ActivationResult,
  ): void {
    if (resp.type === PTYPE.FAULT) {
      const f = faultError(resp.status, 'request');
      if (resp.callId !== callId) {
        throw new KmsClientError(
          'rpc',
          'FAULT',
          `${f.message} (with call_id ${resp.callId}, ours was ${callId})`,
          {
            ncaStatus: resp.status,
            ncaName: f.ncaName,
          },
        );
      }
      throw f;
    }
    if (resp.type !== PTYPE.RESPONSE) {
      throw verificationError('UNEXPECTED_PDU', `expected a response, got ${ptypeName(resp.type)}`, 'PTYPE');
    }
    checkCallId(resp.callId, callId, 'response');
    if (resp.contextId !== contextId) {
      throw verificationError(
        'BAD_ECHO',
        `response on context ${resp.contextId}, the request was on context ${contextId}`,
        'p_cont_id',
      );
    }
    if ((resp.flags & (PFC.FIRST_FRAG | PFC.LAST_FRAG)) !== (PFC.FIRST_FRAG | PFC.LAST_FRAG)) {
      throw verificationError(
        'BAD_FRAGMENT',
        `response flags 0x${resp.flags.toString(16)}: not a single fragment`,
        'pfc_flags',
      );
    }
    // The NDR stub and the KMS message: every check in ClientExchange (spec b.2, b.3, c.2–c.6).
    const v = this.kms.verifyStub(resp.stub, ndr);
    if (!v.answered) {
      result.hresult = v.hresult;
      result.hresultText = hresultText(v.hresult);
      return;
    }
    const count = v.currentCount;
    result.epid = v.epid();
    const hwid = v.hwid();
    result.hwid = hwid ? hex(hwid).toUpperCase() : null;
    result.count = count;
    result.activationInterval = v.activationInterval;
    result.renewalInterval = v.renewalInterval;
    if (v.hmacSlot !== null) result.hmacSlot = v.hmacSlot;
    // The client decides (spec f.4): activated once the count reaches its own threshold.
    result.activated = count >= this.product.requiredCount;
    result.hresult = result.activated ? HResult.S_OK : HResult.COUNT_INSUFFICIENT;
    result.hresultText = result.activated
      ? `activated: the host counts ${count} machines, this product needs ${this.product.requiredCount}`
      : `${hresultText(HResult.COUNT_INSUFFICIENT)} (count ${count}, needed ${this.product.requiredCount})`;
  }

  /** Sends `requests` requests, on one connection or (`newConnection`) each on its own. */
  async run(requests = 1, newConnection = false): Promise<ActivationResult[]> {
    if (!Number.isInteger(requests) || requests < 1) badOption(`requests ${requests}: at least 1`);
    const out: ActivationResult[] = [];
    try {
      for (let i = 0; i < requests; i++) {
        out.push(await this.activateOnce());
        if (newConnection) this.close();
      }
    } finally {
      this.close();
    }
    return out;
  }
}

function faultError(status: number, what: string): KmsClientError {
  const name = NCA_NAMES.get(status >>> 0);
  return new KmsClientError(
    'rpc',
    'FAULT',
    `the host answered the ${what} with a fault: ${ncaStatusName(status)}`,
    {
      ncaStatus: status >>> 0,
      ...(name ? { ncaName: name } : {}),
    },
  );
}

function checkCallId(got: number, want: number, what: string): void {
  if (got !== want)
    throw verificationError('BAD_ECHO', `${what} carries call_id ${got}, ours was ${want}`, 'call_id');
}

/** Reads bind_ack / alter_context_resp results against the contexts offered, in order (spec a.4). */
function acceptedContexts(
  ack: BindAckBody,
  offered: PresentationContext[],
  what: string,
): { ndr32: number | null; ndr64: number | null; btfn: number | null } {
  if (ack.results.length !== offered.length) {
    throw verificationError(
      'BAD_VALUE',
      `${what} has ${ack.results.length} results for ${offered.length} contexts`,
      'n_results',
    );
  }
  const out = { ndr32: null as number | null, ndr64: null as number | null, btfn: null as number | null };
  offered.forEach((c, i) => {
    const r = ack.results[i]!;
    const offeredTs = c.transferSyntaxes[0]!;
    if (r.result === CONTEXT_RESULT.NEGOTIATE_ACK) {
      if (offeredTs.uuid.startsWith('6cb71c2c-9812-4540-')) out.btfn = r.reason;
      return;
    }
    if (r.result !== CONTEXT_RESULT.ACCEPTANCE) return;
    if (r.transferSyntax.uuid !== offeredTs.uuid || r.transferSyntax.version !== offeredTs.version) {
      throw verificationError(
        'BAD_VALUE',
        `${what} accepts context ${c.contextId} with transfer syntax ${r.transferSyntax.uuid} v${r.transferSyntax.version}, which was not offered there`,
        'p_result.transfer_syntax',
      );
    }
    if (offeredTs.uuid === NDR32_SYNTAX.uuid) out.ndr32 = c.contextId;
    else if (offeredTs.uuid === NDR64_SYNTAX.uuid) out.ndr64 = c.contextId;
  });
  return out;
}

/**
 * Runs `requests` activation requests against one host and returns one result per request. Option
 * errors (unknown product, bad GUID) throw ProtocolError('BAD_VALUE'); everything after that is a
 * result.
 */
export async function activate(opts: ActivateOptions): Promise<ActivationResult[]> {
  const client = new KmsClient(opts);
  return client.run(opts.requests ?? 1, opts.newConnection ?? false);
}
