/**
 * The hosts a fleet can talk to: an in-process KmsService on a manual clock (the fast path, real
 * crypto and pool logic through `handleCall`), or a remote kmslab host reached over TCP with
 * KmsClient, its manual clock moved through the control API.
 */
import { type Catalog, defaultCatalog } from '../catalog/products.js';
import { ManualClock } from '../host/clock.js';
import type { HostPolicy } from '../host/policy.js';
import { SeededRandom } from '../host/random.js';
import { KmsService } from '../host/service.js';
import { ClientExchange, prepareRequest, type RequestTemplate } from '../kms/exchange.js';
import { hresultHex } from '../kms/hresult.js';
import type { KmsRequestBody } from '../kms/messages.js';
import { MemoryStore } from '../store/memory.js';
import type { Store, StoreChange } from '../store/store.js';
import { isProtocolError } from '../wire/errors.js';
import { fileTimeFromMs } from '../wire/filetime.js';
import { type Guid, NIL_GUID } from '../wire/guid.js';
import { type HostPort, KmsClient } from './client.js';
import type { ExchangeOutcome, ExchangeRequest, FleetHost, FleetPlan } from './fleet.js';

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

function failure(error: string): ExchangeOutcome {
  return { count: null, activationInterval: 0, renewalInterval: 0, hresult: 0, error };
}

/**
 * A MemoryStore that keeps the pools and meta but drops the per-request history. A fleet never reads
 * the history, and 10,000 machines over 180 days would append 260,000 records (about 340 MB of heap
 * and a measurable share of the run time in garbage collection).
 */
class PoolOnlyMemoryStore extends MemoryStore {
  private seq = 0;

  override commit(change: StoreChange): number {
    if (!change.history) return super.commit(change);
    super.commit({ upsert: change.upsert, remove: change.remove, meta: change.meta });
    this.seq += 1;
    return this.seq;
  }
}

export interface InProcessHostOptions {
  /** Seeds the host's ePIDs, HwId and response randomness, and the clients' IVs. Default 1. */
  seed?: string | number;
  /** Initial virtual time. */
  start?: number;
  catalog?: Catalog;
  policy?: Partial<HostPolicy>;
  /** Default: a fresh PoolOnlyMemoryStore, or a MemoryStore with `keepHistory`. */
  store?: Store;
  /**
   * Keep the host's per-request history (a MemoryStore keeping the newest 100,000 rows, more than a
   * serve host's default: a fleet run is inspected afterwards). Default false.
   */
  keepHistory?: boolean;
}

/** KmsService in this process on a ManualClock; each request is a full NDR32 stub through handleCall. */
export class InProcessFleetHost implements FleetHost {
  readonly mode = 'in-process' as const;
  readonly description: string;
  readonly clock: ManualClock;
  readonly service: KmsService;
  private readonly requestRandom: SeededRandom;
  /** The client side: src/kms's ClientExchange, each machine's request prepared once. */
  private readonly client = new ClientExchange();
  private readonly templates: (RequestTemplate | undefined)[] = [];
  /** Each request is its own connection, as a real client's is. */
  private readonly conn = { peer: 'fleet', connectionId: 0 };
  private seenEpid: string | null = null;

  constructor(opts: InProcessHostOptions = {}) {
    const seed = String(opts.seed ?? 1);
    this.clock = new ManualClock(opts.start ?? Date.UTC(2026, 0, 1));
    this.service = new KmsService({
      clock: this.clock,
      random: new SeededRandom(seed).fork('host'),
      store:
        opts.store ??
        (opts.keepHistory ? new MemoryStore({ maxHistory: 100_000 }) : new PoolOnlyMemoryStore()),
      catalog: opts.catalog ?? defaultCatalog(),
      policy: opts.policy,
    });
    this.requestRandom = new SeededRandom(seed).fork('requests');
    const store = opts.store
      ? `${this.service.store.kind} store`
      : opts.keepHistory
        ? 'memory store with history'
        : 'memory store, no history';
    this.description = `in-process KmsService (${store})`;
  }

  /** A new plan: forget the prepared requests (machine ids are per plan). The pools stay. */
  start(_plan: FleetPlan): void {
    this.templates.length = 0;
  }

  exchange(req: ExchangeRequest): ExchangeOutcome {
    this.clock.set(req.now);
    const conn = this.conn;
    conn.connectionId += 1;
    let t = this.templates[req.machine.id];
    if (!t) {
      t = prepareRequest(requestBody(req));
      this.templates[req.machine.id] = t;
    }
    const x = this.client;
    x.encode(t, fileTimeFromMs(req.now), this.requestRandom, req.licenseStatus, req.bindingExpiration);
    const out = this.service.handleCall(x.requestStub('ndr32'), 'ndr32', conn);
    if (out.kind === 'fault')
      return failure(`FAULT: the host answered with an RPC fault, status ${hresultHex(out.status)}`);
    try {
      const r = x.verifyStub(out.stub, 'ndr32');
      if (!r.answered)
        return { count: null, activationInterval: 0, renewalInterval: 0, hresult: r.hresult, error: null };
      this.seenEpid ??= r.epid();
      return {
        count: r.currentCount,
        activationInterval: r.activationInterval,
        renewalInterval: r.renewalInterval,
        hresult: 0,
        error: null,
      };
    } catch (e) {
      if (isProtocolError(e)) return failure(`${e.code}: ${e.message}`);
      throw e;
    }
  }

  poolCounts(at: number, applicationIds: readonly Guid[]): Record<Guid, number> {
    this.clock.set(at);
    const out: Record<Guid, number> = {};
    for (const id of applicationIds) out[id] = this.service.countFor(id);
    return out;
  }

  epid(): string | null {
    return this.seenEpid;
  }
}

export interface RemoteHostOptions {
  /** KMS over TCP. */
  target: HostPort;
  /** The host's control API (it must run with --clock manual). */
  control: HostPort;
  /** Empty the host's pools and history first (POST /reset). */
  reset?: boolean;
  /** The control API's bearer token, when it needs one (serve --control-token). */
  controlToken?: string;
  timeoutMs?: number;
  catalog?: Catalog;
}

/**
 * A kmslab host elsewhere: one KmsClient (new TCP connection, bind, request, full verification) per
 * request, and the host's manual clock set to each event's virtual time through POST /clock/set.
 */
export class RemoteFleetHost implements FleetHost {
  readonly mode = 'remote' as const;
  readonly description: string;
  private time = Number.NaN;
  private random = new SeededRandom(1);
  private seenEpid: string | null = null;

  constructor(private readonly opts: RemoteHostOptions) {
    this.description = `kmslab host at ${opts.target.host}:${opts.target.port} (control ${opts.control.host}:${opts.control.port})`;
  }

  private async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const { host, port } = this.opts.control;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.opts.controlToken ? { authorization: `Bearer ${this.opts.controlToken}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
    } catch (e) {
      throw new Error(`control API ${url}: ${(e as Error).message}`);
    }
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok)
      throw new Error(`control API ${method} ${path}: HTTP ${res.status} ${String(json['error'] ?? '')}`);
    return json;
  }

  private async setTime(t: number): Promise<void> {
    if (t === this.time) return;
    await this.call('POST', '/clock/set', { time: new Date(t).toISOString() });
    this.time = t;
  }

  async start(plan: FleetPlan): Promise<void> {
    this.random = new SeededRandom(plan.seed).fork('requests');
    if (this.opts.reset) await this.call('POST', '/reset', {});
    await this.setTime(plan.start);
  }

  async exchange(req: ExchangeRequest): Promise<ExchangeOutcome> {
    await this.setTime(req.now);
    const { machine: m, product: p } = req;
    const client = new KmsClient({
      host: this.opts.target.host,
      port: this.opts.target.port,
      sku: p.skuId,
      app: p.applicationId,
      kmsId: p.kmsId,
      protocol: p.protocol,
      requiredCount: p.requiredCount,
      cmid: m.cmid,
      workstation: m.workstation,
      licenseStatus: req.licenseStatus,
      bindingExpiration: req.bindingExpiration,
      vm: m.vm,
      clock: { kind: 'manual', now: () => req.now },
      random: this.random,
      timeoutMs: this.opts.timeoutMs ?? 10_000,
      catalog: this.opts.catalog,
    });
    try {
      const r = await client.activateOnce();
      if (r.error) return failure(`${r.error.kind}/${r.error.code}: ${r.error.message}`);
      if (r.count === null)
        return { count: null, activationInterval: 0, renewalInterval: 0, hresult: r.hresult, error: null };
      this.seenEpid ??= r.epid;
      return {
        count: r.count,
        activationInterval: r.activationInterval ?? 0,
        renewalInterval: r.renewalInterval ?? 0,
        hresult: 0,
        error: null,
      };
    } finally {
      client.close();
    }
  }

  async poolCounts(at: number, applicationIds: readonly Guid[]): Promise<Record<Guid, number>> {
    await this.setTime(at);
    const s = (await this.call('GET', '/status')) as { pools?: { applicationId: string; count: number }[] };
    const out: Record<Guid, number> = {};
    for (const id of applicationIds) out[id] = s.pools?.find((p) => p.applicationId === id)?.count ?? 0;
    return out;
  }

  epid(): string | null {
    return this.seenEpid;
  }
}
