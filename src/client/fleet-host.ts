/**
 * The hosts a fleet can talk to: an in-process KmsService on a manual clock (the fast path, real
 * crypto and pool logic through `handleCall`), or a remote kmslab host reached over TCP with
 * KmsClient, its manual clock moved through the control API.
 */

import { Worker } from 'node:worker_threads';
import { type Catalog, defaultCatalog } from '../catalog/products.js';
import { ManualClock } from '../host/clock.js';
import type { HostPolicy } from '../host/policy.js';
import { SeededRandom } from '../host/random.js';
import { KmsService } from '../host/service.js';
import { ClientExchange, type RequestTemplate } from '../kms/exchange.js';
import { hresultHex } from '../kms/hresult.js';
import { MemoryStore } from '../store/memory.js';
import type { Store, StoreChange } from '../store/store.js';
import { isProtocolError } from '../wire/errors.js';
import { fileTimeFromMs } from '../wire/filetime.js';
import type { Guid } from '../wire/guid.js';
import { type HostPort, KmsClient } from './client.js';
import type { ExchangeOutcome, ExchangeRequest, FleetHost, FleetPlan } from './fleet.js';
import {
  CAPACITY,
  FIRST_RETRY_MIN,
  FleetChannel,
  type FleetWorkerData,
  OUTCOME,
  templateFor,
} from './fleet-channel.js';

function failure(error: string): ExchangeOutcome {
  return { count: null, activationInterval: 0, renewalInterval: 0, hresult: 0, error };
}

/** The host answered with an RPC fault in place of a response. */
function faulted(status: number): ExchangeOutcome {
  return failure(`FAULT: the host answered with an RPC fault, status ${hresultHex(status)}`);
}

/** The host answered with an error HRESULT and no count. */
function refused(hresult: number): ExchangeOutcome {
  return { count: null, activationInterval: 0, renewalInterval: 0, hresult, error: null };
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
  /**
   * Run the client side (encoding requests, verifying answers) on a worker thread while this thread
   * runs only the host, a batch of requests at a time (see `exchangeBatch`). The requests, answers and
   * results are the same as without it, byte for byte; only the wall time differs. Default false.
   */
  clientThread?: boolean;
}

/** How long the host thread waits for the client worker before it calls it stuck. */
const WORKER_TIMEOUT_MS = 60_000;

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
  private readonly seed: string;
  private readonly clientThread: boolean;
  private worker: Worker | null = null;
  private channel: FleetChannel | null = null;
  private planned = false;

  constructor(opts: InProcessHostOptions = {}) {
    const seed = String(opts.seed ?? 1);
    this.seed = seed;
    this.clientThread = opts.clientThread ?? false;
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
    this.description = `in-process KmsService (${store})${this.clientThread ? ', clients on a worker thread' : ''}`;
  }

  /**
   * A new plan: forget the prepared requests (machine ids are per plan). The pools stay. With
   * `clientThread`, starts the client worker (once: such a host runs one plan).
   */
  start(plan: FleetPlan): void | Promise<void> {
    this.templates.length = 0;
    if (!this.clientThread) return;
    // The worker's request IVs start from the seed: a second plan would not continue them as `exchange`
    // does.
    if (this.planned) throw new Error('an InProcessFleetHost with clientThread runs one plan');
    this.planned = true;
    const channel = FleetChannel.create();
    const data: FleetWorkerData = {
      buffer: channel.buffer,
      seed: this.seed,
      plan: { machines: plan.machines, products: plan.products },
    };
    // From dist/ the worker is plain JavaScript; from the TypeScript sources (tests, `tsx`) it needs
    // tsx's loader too.
    const fromSource = import.meta.url.endsWith('.ts');
    const url = new URL(`./fleet-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url);
    const worker = fromSource
      ? new Worker(
          `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(url.href)}); });`,
          { eval: true, workerData: data },
        )
      : new Worker(url, { workerData: data });
    this.worker = worker;
    this.channel = channel;
    // Ready once its modules are loaded: a worker that cannot load fails here, not in a batch.
    return new Promise<void>((resolve, reject) => {
      const fail = (e: unknown) =>
        reject(e instanceof Error ? e : new Error(`fleet client worker exited (${e})`));
      worker.once('message', () => {
        worker.off('error', fail);
        worker.off('exit', fail);
        resolve();
      });
      worker.once('error', fail);
      worker.once('exit', fail);
    });
  }

  /**
   * The longest stretch of virtual time `exchangeBatch` may take in one batch (0: no batches). A
   * machine's next request comes at least the host's shortest interval after its last one, so no
   * machine asks twice within it and every request a batch schedules comes after the batch: the
   * order is the one `exchange` one at a time would give.
   */
  get batchWindowMs(): number {
    if (this.channel === null) return 0;
    const p = this.service.state.policy;
    const minutes = Math.min(p.activationInterval, p.renewalInterval, FIRST_RETRY_MIN);
    return minutes >= 1 ? minutes * 60_000 : 0;
  }

  /**
   * `exchange` for each request, in order, with the client side on the worker: it encodes ahead of
   * the host and verifies behind it. Requests must be for distinct machines.
   */
  exchangeBatch(reqs: readonly ExchangeRequest[]): ExchangeOutcome[] {
    const out: ExchangeOutcome[] = [];
    for (let from = 0; from < reqs.length; from += CAPACITY)
      this.runBatch(reqs, from, Math.min(reqs.length, from + CAPACITY), out);
    return out;
  }

  private runBatch(reqs: readonly ExchangeRequest[], from: number, to: number, out: ExchangeOutcome[]): void {
    const ch = this.channel!;
    const ctrl = ch.ctrl;
    const n = to - from;
    for (let i = 0; i < n; i++) {
      const r = reqs[from + i]!;
      ch.desc[4 * i] = r.machine.id;
      ch.desc[4 * i + 1] = r.now;
      ch.desc[4 * i + 2] = r.licenseStatus;
      ch.desc[4 * i + 3] = r.bindingExpiration;
    }
    Atomics.store(ctrl, FleetChannel.ENCODED, 0);
    Atomics.store(ctrl, FleetChannel.ANSWERED, 0);
    Atomics.store(ctrl, FleetChannel.VERIFIED, 0);
    Atomics.store(ctrl, FleetChannel.SIZE, n);
    Atomics.add(ctrl, FleetChannel.BATCH, 1);
    Atomics.notify(ctrl, FleetChannel.BATCH);
    const conn = this.conn;
    for (let i = 0; i < n; i++) {
      this.waitFor(FleetChannel.ENCODED, i + 1);
      const r = reqs[from + i]!;
      this.clock.set(r.now);
      conn.connectionId += 1;
      const o = this.service.handleCall(ch.request(i), 'ndr32', conn);
      const at = i * OUTCOME.SIZE;
      if (o.kind === 'fault') {
        ch.outcome[at] = OUTCOME.FAULT;
        ch.outcome[at + 4] = o.status;
      } else {
        ch.outcome[at] = OUTCOME.NONE;
        ch.putResponse(i, o.stub);
      }
      Atomics.store(ctrl, FleetChannel.ANSWERED, i + 1);
      Atomics.notify(ctrl, FleetChannel.ANSWERED);
    }
    this.waitFor(FleetChannel.VERIFIED, n);
    for (let i = 0; i < n; i++) {
      const at = i * OUTCOME.SIZE;
      const o = ch.outcome;
      switch (o[at]) {
        case OUTCOME.ANSWERED:
          out.push({
            count: o[at + 1]!,
            activationInterval: o[at + 2]!,
            renewalInterval: o[at + 3]!,
            hresult: 0,
            error: null,
          });
          break;
        case OUTCOME.REFUSED:
          out.push(refused(o[at + 4]!));
          break;
        case OUTCOME.FAULT:
          out.push(faulted(o[at + 4]!));
          break;
        default:
          out.push(failure(ch.textAt(i)));
      }
    }
    if (this.seenEpid === null && ch.hasText(FleetChannel.EPID_SLOT))
      this.seenEpid = ch.textAt(FleetChannel.EPID_SLOT);
  }

  /** Stops the client worker, if there is one. */
  async close(): Promise<void> {
    const w = this.worker;
    if (w === null) return;
    this.worker = null;
    await w.terminate();
  }

  /** Blocks until the worker has moved counter `k` to `n`; throws if it failed or went silent. */
  private waitFor(k: number, n: number): void {
    const ctrl = this.channel!.ctrl;
    for (;;) {
      const v = Atomics.load(ctrl, k);
      if (v >= n) return;
      if (Atomics.load(ctrl, FleetChannel.FAILED) !== 0)
        throw new Error(`fleet client worker failed: ${this.channel!.textAt(FleetChannel.ERROR_SLOT)}`);
      if (Atomics.wait(ctrl, k, v, WORKER_TIMEOUT_MS) === 'timed-out' && Atomics.load(ctrl, k) === v)
        throw new Error(`fleet client worker did not answer for ${WORKER_TIMEOUT_MS / 1000} s`);
    }
  }

  exchange(req: ExchangeRequest): ExchangeOutcome {
    this.clock.set(req.now);
    const conn = this.conn;
    conn.connectionId += 1;
    const t = templateFor(this.templates, req);
    const x = this.client;
    x.encode(t, fileTimeFromMs(req.now), this.requestRandom, req.licenseStatus, req.bindingExpiration);
    const out = this.service.handleCall(x.requestStub('ndr32'), 'ndr32', conn);
    if (out.kind === 'fault') return faulted(out.status);
    try {
      const r = x.verifyStub(out.stub, 'ndr32');
      if (!r.answered) return refused(r.hresult);
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
