/**
 * `createMemoryHost`: the real `KmsService` (src/host/service.ts) with no socket in front of it. A
 * request goes in as values, is encoded with the client's own encoder, wrapped in its NDR stub, handled
 * by the service (decryption, policy, count pool, store commit, event) and its answer stub is checked
 * and verified by the client's own `ClientExchange` (the exact stub length included), all synchronously. No RPC bind, no TCP, no timers: a
 * property test can send thousands of requests per second and move the manual clock between them.
 *
 * This module is a thin adapter over the public pieces (`KmsService.handleCall`, `ClientExchange`,
 * `resolveProduct`) so that it follows them when they change.
 */
import { type Catalog, defaultCatalog } from '../catalog/products.js';
import { resolveProduct } from '../client/client.js';
import { type DurationInput, ManualClock, parseDuration } from '../host/clock.js';
import type { ActivationEvent } from '../host/events.js';
import type { IdentityOptions } from '../host/identity.js';
import type { HostPolicy } from '../host/policy.js';
import { SeededRandom } from '../host/random.js';
import { type CallOutcome, KmsService } from '../host/service.js';
import { ClientExchange, prepareRequest } from '../kms/exchange.js';
import { HResult } from '../kms/hresult.js';
import type { KmsRequestBody, KmsVersion, NdrSyntax } from '../kms/messages.js';
import { MemoryStore } from '../store/memory.js';
import { fileTimeFromMs } from '../wire/filetime.js';
import { type Guid, NIL_GUID, parseGuid } from '../wire/guid.js';
import type { PoolName } from './model.js';

/** Default start of the memory host's clock: the lab host's (`LAB_START`). */
export const MEMORY_HOST_START = Date.UTC(2026, 0, 1);

export interface MemoryHostOptions {
  /** Seeds the ePIDs, HwId, response random values and the request IVs. Default 'kmslab'. */
  seed?: number | string;
  /** A ManualClock to share, or the start time of a new one (default 2026-01-01T00:00:00Z). */
  clock?: ManualClock | number | Date | string;
  catalog?: Catalog;
  policy?: Partial<HostPolicy>;
  identity?: IdentityOptions;
  /** NDR syntax of the stubs. Default 'ndr32' (what Windows sends first). */
  ndr?: NdrSyntax;
  /** History rows the memory store keeps (default 10,000, like the lab host). */
  historyLimit?: number;
  /**
   * Fast mode: every request travels as a KMS V4 message (the base request and its MAC, in clear)
   * whatever its product's protocol, so the AES-CBC of V5/V6 and the V6 HMAC are skipped on both sides.
   * Everything else is the same: NDR stub, decoding, policy, pools, store, events; the count does not
   * depend on the protocol. About half the cost of a V6 request (docs/testing.md). Default false.
   */
  fast?: boolean;
}

/** One request, as values. Product fields resolve as in the client emulator (`activate`). */
export interface MemoryRequest {
  cmid: string;
  /** A catalog product name or SKU GUID (default: Windows 10/11 Enterprise). */
  product?: string;
  sku?: string;
  /** Raw ApplicationId / KmsCountedId; override the product's. */
  app?: string;
  kmsId?: string;
  /** N_Policy the client sends; default the KMS id's. */
  requiredCount?: number;
  /** Default: the KMS id's protocol version. */
  protocol?: KmsVersion;
  /** The client's clock: ms since the epoch, default the host clock (no skew). */
  clientTime?: number;
  workstation?: string;
  previousCmid?: string;
  vm?: boolean;
  licenseStatus?: number;
  bindingExpiration?: number;
}

/** The verified answer to one request. */
export interface MemoryActivation {
  /** S_OK when activated, 0xC004F038 below the threshold, or the host's refusal. */
  hresult: number;
  activated: boolean;
  /** The count the host answered (null for a refusal). */
  count: number | null;
  requiredCount: number;
  epid: string | null;
  /** V6 only: 16 upper-case hex digits. */
  hwid: string | null;
  /** The host's event for this request (what the lab host's event stream would carry). */
  event: ActivationEvent;
}

/** The application's pool, the way the lab host names them. */
const POOL_APP: Record<PoolName, Guid> = {
  windows: '55c92734-d682-4d71-983e-d6ec3f16059f',
  office2010: '59a52881-a989-479d-af46-f275c6370663',
  office2013: '0ff1ce15-a989-479d-af46-f275c6370663',
};

export class MemoryExchangeError extends Error {
  override readonly name = 'MemoryExchangeError';
}

export interface MemoryHost {
  readonly clock: ManualClock;
  readonly service: KmsService;
  readonly catalog: Catalog;
  now(): number;
  /** Moves the clock forward (ms, '2h', '7d', { days }); returns the new time. */
  advance(d: DurationInput): number;
  /** Sets the clock, also backwards (a clock jump); returns the new time. */
  setTime(t: number | Date | string): number;
  /** One request through the real service, verified; throws MemoryExchangeError if the answer fails a check. */
  request(req: MemoryRequest): MemoryActivation;
  /** The raw seam: one NDR request stub in, the service's outcome out (for mutated requests). */
  exchange(stub: Uint8Array, ndr?: NdrSyntax): CallOutcome;
  /** The count a new request of this pool would be told now, without counting anyone. */
  count(pool?: PoolName | Guid): number;
  /** Every pool's count now. */
  counts(): Record<PoolName, number>;
  status(): ReturnType<KmsService['status']>;
  clients(): ReturnType<KmsService['clients']>;
  /** Every activation event since the start (or the last reset). */
  events(): readonly ActivationEvent[];
  onEvent(fn: (e: ActivationEvent) => void): () => void;
  /** Empties the pools, the history and the event list; identity and clock stay. */
  reset(): void;
}

function toMs(t: number | Date | string): number {
  const v = typeof t === 'number' ? t : t instanceof Date ? t.getTime() : Date.parse(t);
  if (!Number.isFinite(v)) throw new RangeError(`not a time: ${String(t)}`);
  return v;
}

export function createMemoryHost(opts: MemoryHostOptions = {}): MemoryHost {
  const seed = String(opts.seed ?? 'kmslab');
  const clock =
    opts.clock instanceof ManualClock ? opts.clock : new ManualClock(toMs(opts.clock ?? MEMORY_HOST_START));
  const catalog = opts.catalog ?? defaultCatalog();
  const random = new SeededRandom(seed);
  const service = new KmsService({
    clock,
    random,
    store: new MemoryStore(opts.historyLimit !== undefined ? { maxHistory: opts.historyLimit } : {}),
    catalog,
    ...(opts.policy ? { policy: opts.policy } : {}),
    ...(opts.identity ? { identity: opts.identity } : {}),
  });
  const ivs = random.fork('memory-host/request-iv');
  /** The client side: one exchange, reused (requests are synchronous). */
  const client = new ClientExchange();
  const defaultNdr = opts.ndr ?? 'ndr32';
  const conn = { peer: 'memory', connectionId: 1 };
  let log: ActivationEvent[] = [];
  service.onEvent((e) => log.push(e));

  const exchange = (stub: Uint8Array, ndr: NdrSyntax = defaultNdr): CallOutcome =>
    service.handleCall(stub, ndr, conn);

  // Product resolution (a catalog lookup by name) once per distinct selection, not per request.
  const products = new Map<string, ReturnType<typeof resolveProduct>>();
  const resolve = (req: MemoryRequest): ReturnType<typeof resolveProduct> => {
    const protocol = opts.fast ? 4 : req.protocol;
    const key = `${req.product}|${req.sku}|${req.app}|${req.kmsId}|${protocol}|${req.requiredCount}`;
    let p = products.get(key);
    if (p === undefined) {
      p = resolveProduct({ ...req, ...(protocol !== undefined ? { protocol } : {}) }, catalog);
      products.set(key, p);
    }
    return p;
  };

  const request = (req: MemoryRequest): MemoryActivation => {
    const product = resolve(req);
    const now = clock.now();
    const body: KmsRequestBody = {
      minorVersion: 0,
      majorVersion: product.protocol,
      vmInfo: req.vm ? 1 : 0,
      licenseStatus: req.licenseStatus ?? 2,
      bindingExpiration: req.bindingExpiration ?? 43_200,
      applicationId: product.applicationId,
      skuId: product.skuId,
      kmsId: product.kmsId,
      cmid: parseGuid(req.cmid),
      requiredClientCount: product.requiredCount,
      clientTime: fileTimeFromMs(req.clientTime ?? now),
      previousCmid: req.previousCmid !== undefined ? parseGuid(req.previousCmid) : NIL_GUID,
      workstation: req.workstation ?? 'MEMORY-HOST',
    };
    client.encode(prepareRequest(body), body.clientTime, ivs);
    // The stub is a view into the exchange's buffer: handleCall reads it before the next request.
    const outcome = exchange(client.requestStub(defaultNdr));
    if (outcome.kind === 'fault' || outcome.event === null) {
      throw new MemoryExchangeError(
        outcome.kind === 'fault'
          ? `the service answered with RPC fault 0x${outcome.status.toString(16)}`
          : `the service did not decode the request: ${outcome.error?.message ?? 'no event'}`,
      );
    }
    const event = outcome.event;
    const requiredCount = product.requiredCount;
    let v: ReturnType<ClientExchange['verifyStub']>;
    try {
      v = client.verifyStub(outcome.stub, defaultNdr);
    } catch (e) {
      throw new MemoryExchangeError(`the answer failed verification: ${(e as Error).message}`);
    }
    if (!v.answered) {
      return {
        hresult: v.hresult,
        activated: false,
        count: null,
        requiredCount,
        epid: null,
        hwid: null,
        event,
      };
    }
    const count = v.currentCount;
    // The client decides (spec f.4), as the client emulator does.
    const activated = count >= requiredCount;
    // One object literal of a fixed shape (a spread of a shared base here cost ~10% of a fast request).
    return {
      hresult: activated ? HResult.S_OK : HResult.COUNT_INSUFFICIENT,
      activated,
      count,
      requiredCount,
      epid: v.epid(),
      hwid: hwidHex(v.hwid()),
      event,
    };
  };

  const poolApp = (p: PoolName | Guid): Guid => (p in POOL_APP ? POOL_APP[p as PoolName] : p);

  return {
    clock,
    service,
    catalog,
    now: () => clock.now(),
    advance(d) {
      const ms = parseDuration(d);
      if (ms < 0) throw new RangeError('advance must not be negative (use setTime)');
      return clock.advance(ms);
    },
    setTime(t) {
      clock.set(toMs(t));
      return clock.now();
    },
    request,
    exchange,
    count: (p = 'windows') => service.countFor(poolApp(p)),
    counts: () => ({
      windows: service.countFor(POOL_APP.windows),
      office2010: service.countFor(POOL_APP.office2010),
      office2013: service.countFor(POOL_APP.office2013),
    }),
    status: () => service.status(),
    clients: () => service.clients(),
    events: () => log,
    onEvent: (fn) => service.onEvent(fn),
    reset() {
      service.reset();
      log = [];
    },
  };
}

function hwidHex(hwid: Uint8Array | null): string | null {
  return hwid === null ? null : Buffer.from(hwid).toString('hex').toUpperCase();
}
