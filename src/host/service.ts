import { type Catalog, defaultCatalog } from '../catalog/products.js';
import { decodeRequest, encodeResponseStub } from '../kms/envelope.js';
import { HResult } from '../kms/hresult.js';
import type { KmsRequestBody, KmsVersion, NdrSyntax } from '../kms/messages.js';
import { unwrapRequestStub, wrapErrorStub } from '../kms/stub.js';
import type { Store, StoreChange } from '../store/store.js';
import { isProtocolError, type ProtocolError } from '../wire/errors.js';
import type { Guid } from '../wire/guid.js';
import type { Clock } from './clock.js';
import {
  counterRows,
  countersFromRows,
  countRequest,
  emptyCounters,
  type HostReportInfo,
  wmiProperties,
} from './counters.js';
import type { ActivationEvent } from './events.js';
import { createHostState, type HostState, handle, type Imposed, poolFor, type RequestMeta } from './host.js';
import { createIdentity, epidFor, type HostIdentity, type IdentityOptions } from './identity.js';
import { type HostPolicy, resolvePolicy } from './policy.js';
import { CMID_RETENTION_MS } from './pool.js';
import type { Random } from './random.js';

/** NCA status for a stub that contradicts its own length fields (spec a.9). */
export const NCA_S_FAULT_NDR = 0x000006f7;

/** The connection a decoded request came on, and its protocol: what a CallShaper decides by. */
export interface CallInfo {
  peer: string;
  connectionId: number;
  protocol: KmsVersion;
  ndr: NdrSyntax;
}

/**
 * What a caller of handleCall imposes on one decoded request: the host's decision (see `Imposed`),
 * the echoes of the answer, or an RPC fault in its place. The host carries it out without knowing
 * why; the lab harness's fault seam (src/server/fault-seam.ts) is what shapes calls.
 */
export interface CallShaping extends Imposed {
  /** Echoed instead of the request's CMID; the answer is encoded (MAC / HMAC included) with it. */
  cmid?: Guid;
  /** Echoed instead of the request's ClientTime (V6 keys its HMAC with the echoed one, spec c.6). */
  clientTime?: bigint;
  /**
   * Answered as an RPC fault PDU with this NCA status instead of a response. The request is still
   * decided, recorded and announced, and counted as failed.
   */
  ncaStatus?: number;
}

/** Called once per decoded request (not for the health probe); null: the host decides alone. */
export type CallShaper = (req: KmsRequestBody, info: CallInfo) => CallShaping | null;

/** `kind: 'fault'`: an RPC fault PDU (spec a.9) answers the call instead of a response. */
export type CallOutcome =
  | {
      kind: 'response';
      stub: Uint8Array;
      event: ActivationEvent | null;
      error: ProtocolError | null;
      /** The control API's uncounted health-check probe (HEALTH_CHECK_CMID): not a client's request. */
      probe?: true;
    }
  | {
      kind: 'fault';
      status: number;
      event: ActivationEvent | null;
      error: ProtocolError | null;
    };

export interface KmsServiceOptions {
  clock: Clock;
  random: Random;
  store: Store;
  catalog?: Catalog;
  policy?: Partial<HostPolicy>;
  identity?: IdentityOptions;
}

const META_IDENTITY = 'identity';
/** decodeRequest's options, made once (not an object per call). */
const LENIENT = Object.freeze({ lenient: true });
const STRICT = Object.freeze({ lenient: false });

/**
 * Calls whose store changes are committed together (group commit): pass the group to handleCall,
 * which then stages its change instead of committing it, and call `commitGroup` before sending any of
 * the group's answers. See `KmsService.openGroup`.
 */
export interface CommitGroup {
  /** Changes staged so far (the index of a call's change is `size` before its handleCall). */
  readonly size: number;
  /**
   * After commitGroup: null if the change staged at `index` is committed and its event announced, else
   * the error that stopped it (the store's, for every change of the group, or a listener's for one).
   */
  failure(index: number): unknown;
}

class Group implements CommitGroup {
  readonly changes: StoreChange[] = [];
  readonly events: ActivationEvent[] = [];
  state: 'open' | 'committed' | 'failed' = 'open';
  error: unknown = null;
  listenerErrors: Map<number, unknown> | null = null;
  /** A call of the group moved the counters without staging a change (a request that did not decode). */
  countersMoved = false;

  get size(): number {
    return this.changes.length;
  }

  failure(index: number): unknown {
    if (this.state === 'open') throw new Error('commit group not committed yet');
    if (this.state === 'failed') return this.error;
    return this.listenerErrors?.get(index) ?? null;
  }
}

/**
 * CMID of the control API's /healthz probe: answered like any request (real bind, real crypto) but
 * never counted, recorded or announced, so a health check cannot move the count it reports.
 */
export const HEALTH_CHECK_CMID: Guid = '6b6d736c-6162-4000-8000-6865616c7468';
const META_CLOCK = 'manualClock';

interface SavedIdentity {
  epids: Record<string, string>;
  hwid: string;
  hostBuild: number;
  lcid: number;
}

/**
 * The identity is generated once and then belongs to the store (spec e.1 step 6): a restart keeps
 * every ePID and the HwId whatever the seed; explicit options override only what they name.
 */
function resolveIdentity(
  catalog: Catalog,
  saved: string | undefined,
  opts: KmsServiceOptions,
  now: number,
): HostIdentity {
  if (!saved) return createIdentity(catalog, opts.random.fork('identity'), now, opts.identity);
  const j = JSON.parse(saved) as SavedIdentity;
  const identity: HostIdentity = {
    epids: { ...j.epids },
    hwid: new Uint8Array(Buffer.from(j.hwid, 'hex')),
    hostBuild: j.hostBuild,
    lcid: j.lcid,
  };
  // Pools added to the catalog since the store was created get an ePID now.
  const fresh = createIdentity(catalog, opts.random.fork('identity'), now, {
    hostBuild: j.hostBuild,
    lcid: j.lcid,
    ...(opts.identity?.epids ? { epids: opts.identity.epids } : {}),
  });
  for (const [k, v] of Object.entries(fresh.epids)) {
    if (opts.identity?.epids?.[k] !== undefined || identity.epids[k] === undefined) identity.epids[k] = v;
  }
  if (opts.identity?.hwid) identity.hwid = opts.identity.hwid;
  return identity;
}

/**
 * The host as a service: bytes of a KMS call in, bytes of the answer out, with the pools kept in
 * memory and every change committed to the store before the answer leaves. Time comes from the
 * injected clock and randomness from the injected generator only.
 */
export class KmsService {
  readonly state: HostState;
  readonly clock: Clock;
  readonly store: Store;
  /** Where the ePIDs and HwId came from: the store (kept from an earlier run) or the seed (new). */
  readonly identitySource: 'store' | 'seed';
  private readonly responseRandom: Random;
  /** Rand2 and R (16 bytes each), drawn into one buffer: the encoder uses each before it asks again. */
  private readonly random16 = new Uint8Array(16);
  /** The response random source as a function (one closure, not one per call). */
  private readonly randomBytes = (n: number): Uint8Array => {
    const r = this.responseRandom;
    return n === 16 && r.fill !== undefined ? r.fill(this.random16) : r.bytes(n);
  };
  private readonly listeners = new Set<(e: ActivationEvent) => void>();
  private readonly openGroups = new Set<Group>();
  /**
   * What /status and `kmslab status` report about the host besides its pools: the runtime sets the
   * listening port once it listens, `serve --dns` sets DNS publishing.
   */
  readonly report: HostReportInfo = { listeningPort: null, dnsPublishing: false, lowPriority: false };

  constructor(opts: KmsServiceOptions) {
    this.clock = opts.clock;
    this.store = opts.store;
    const catalog = opts.catalog ?? defaultCatalog();
    const snapshot = this.store.load();
    const identity = resolveIdentity(catalog, snapshot.meta[META_IDENTITY], opts, this.clock.now());
    this.identitySource = snapshot.meta[META_IDENTITY] ? 'store' : 'seed';
    this.store.setMeta(
      META_IDENTITY,
      JSON.stringify({ ...identity, hwid: Buffer.from(identity.hwid).toString('hex') }),
    );
    this.state = createHostState(catalog, resolvePolicy(opts.policy), identity);
    for (const e of snapshot.pools) {
      const pool = this.state.pools.get(e.applicationId);
      // A row stored before the store kept N_policy: its KMS id's N_policy is the best guess.
      if (pool)
        pool.restore({ ...e, requiredCount: e.requiredCount ?? catalog.kmsId(e.kmsId)?.nPolicy ?? 0 });
    }
    const clockMeta = snapshot.meta[META_CLOCK];
    if (clockMeta && this.clock.kind === 'manual' && 'set' in this.clock) {
      (this.clock as unknown as { set(t: number): void }).set(Number(clockMeta));
    }
    this.state.seq = this.store.historyCount();
    const { counters, totals } = countersFromRows(snapshot.counters);
    this.state.counters = counters;
    this.state.totals = totals;
    this.responseRandom = opts.random.fork('responses');
  }

  onEvent(fn: (e: ActivationEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Persists the manual clock so a restart resumes at the same virtual time. */
  saveClock(): void {
    if (this.clock.kind === 'manual') this.store.setMeta(META_CLOCK, String(this.clock.now()));
  }

  /**
   * Opens a commit group. A call handled with it (`handleCall(…, group)`) updates the pools and builds
   * its answer at once but only stages its store change; `commitGroup` then commits all of the group's
   * changes in one store transaction and announces their events. Until then none of the group's answers
   * may be sent: that keeps the guarantee that a client never receives a response whose CMID a crash
   * could still lose. The TCP server groups the calls of one event-loop turn (src/server/tcp.ts).
   */
  openGroup(): CommitGroup {
    const g = new Group();
    this.openGroups.add(g);
    return g;
  }

  /**
   * Commits every change staged in `group` in one transaction, in staging order (history seqs follow
   * it), with the current request totals and manual clock; then gives each staged event its seq and
   * announces it to the onEvent listeners, in order. Throws the store's error (nothing is announced);
   * a listener's error is recorded for its call (see CommitGroup.failure). Idempotent.
   */
  commitGroup(group: CommitGroup): void {
    const g = group as Group;
    if (g.state === 'failed') throw g.error;
    if (g.state === 'committed') return;
    this.openGroups.delete(g);
    const n = g.changes.length;
    if (n === 0 && !g.countersMoved) {
      g.state = 'committed';
      return;
    }
    let seqs: number[];
    try {
      if (n === 0) {
        // Only requests that did not decode: their counters still reach the store before the answers.
        this.store.commit({ counters: this.counterRows() });
        g.state = 'committed';
        return;
      }
      // Counters, totals and the manual clock travel in the same transaction as the requests they
      // describe; only their latest values matter, so they ride on the last change.
      g.changes[n - 1]!.counters = this.counterRows();
      if (this.clock.kind === 'manual') g.changes[n - 1]!.meta = { [META_CLOCK]: String(this.clock.now()) };
      seqs = this.store.commitMany
        ? this.store.commitMany(g.changes)
        : g.changes.map((c) => this.store.commit(c));
    } catch (e) {
      g.state = 'failed';
      // Never null: a null failure means "committed" to whoever answers the group's calls.
      g.error = e ?? new Error('store commit failed');
      throw e;
    }
    g.state = 'committed';
    for (let i = 0; i < n; i++) g.events[i]!.seq = seqs[i]!;
    this.state.seq = seqs[n - 1]!;
    for (let i = 0; i < n; i++) {
      const event = g.events[i]!;
      try {
        for (const fn of this.listeners) fn(event);
      } catch (e) {
        if (g.listenerErrors === null) g.listenerErrors = new Map();
        g.listenerErrors.set(i, e);
      }
    }
  }

  /**
   * One RequestActivation call: NDR stub in, NDR stub (or an RPC fault status) out. With `group` (see
   * openGroup) the store change is staged and the event announced by commitGroup; without it the change
   * is committed and the event announced before this returns. `shaper` may impose on the decoded
   * request (see CallShaping); without one nothing is allocated for it.
   */
  handleCall(
    stub: Uint8Array,
    ndr: NdrSyntax,
    conn: { peer: string; connectionId: number },
    shaper?: CallShaper,
    group?: CommitGroup,
  ): CallOutcome {
    const staging = group as Group | undefined;
    if (staging !== undefined && staging.state !== 'open') throw new Error('commit group already committed');
    let message: Uint8Array;
    try {
      message = unwrapRequestStub(stub, ndr);
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      this.countUndecoded(staging);
      return { kind: 'fault', status: NCA_S_FAULT_NDR, event: null, error: e };
    }
    let decoded: ReturnType<typeof decodeRequest>;
    try {
      decoded = decodeRequest(message, this.state.policy.lenient ? LENIENT : STRICT);
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      this.countUndecoded(staging);
      // Undecodable or unsupported KMS message: a normal response carrying 0x8007000D (spec c.0, f.5).
      return { kind: 'response', stub: wrapErrorStub(HResult.INVALID_DATA, ndr), event: null, error: e };
    }
    if (decoded.body.cmid === HEALTH_CHECK_CMID) return this.answerProbe(decoded, ndr);
    const now = this.clock.now();
    const meta: RequestMeta = {
      now,
      peer: conn.peer,
      connectionId: conn.connectionId,
      protocol: decoded.version,
      ndr,
    };
    const shaping = shaper === undefined ? null : shaper(decoded.body, meta);
    const result = handle(this.state, decoded.body, meta, shaping ?? undefined);
    // The event carries every field of the history row (its `fault` is the shaping's label, or null):
    // it is the row, so no record is copied out of it per request.
    const history = result.event;
    // Failed: not answered with a count (an error HRESULT, or an RPC fault in its place).
    countRequest(
      this.state.counters,
      decoded.body.licenseStatus,
      result.hresult !== HResult.S_OK || shaping?.ncaStatus !== undefined,
    );
    if (staging !== undefined) {
      // Group commit: the change waits for commitGroup (which adds counters and clock), and so do the
      // seq and the announcement of the event.
      staging.changes.push({ upsert: result.change.upsert, remove: result.change.remove, history });
      staging.events.push(result.event);
    } else {
      // Counters, totals and the manual clock travel in the same transaction as the request.
      const change: StoreChange = {
        upsert: result.change.upsert,
        remove: result.change.remove,
        history,
        counters: this.counterRows(),
      };
      if (this.clock.kind === 'manual') change.meta = { [META_CLOCK]: String(now) };
      const seq = this.store.commit(change);
      result.event.seq = seq;
      this.state.seq = seq;
      for (const fn of this.listeners) fn(result.event);
    }
    if (shaping?.ncaStatus !== undefined) {
      return { kind: 'fault', status: shaping.ncaStatus, event: result.event, error: null };
    }
    if (!result.body) {
      return { kind: 'response', stub: wrapErrorStub(result.hresult, ndr), event: result.event, error: null };
    }
    let body = result.body;
    if (shaping?.cmid !== undefined || shaping?.clientTime !== undefined) {
      body = { ...body, cmid: shaping.cmid ?? body.cmid, clientTime: shaping.clientTime ?? body.clientTime };
    }
    const out = encodeResponseStub(
      decoded,
      body,
      { random: this.randomBytes, hwid: this.state.identity.hwid },
      ndr,
    );
    return { kind: 'response', stub: out, event: result.event, error: null };
  }

  /**
   * A call whose stub or message did not decode: a request all the same (total, failed). Without a
   * group its counters are committed now; with one, by commitGroup, before any of its answers.
   */
  private countUndecoded(group: Group | undefined): void {
    countRequest(this.state.counters, null, true);
    if (group !== undefined) group.countersMoved = true;
    else this.store.commit({ counters: this.counterRows() });
  }

  private counterRows(): Record<string, number> {
    return counterRows(this.state.counters, this.state.totals);
  }

  private answerProbe(decoded: ReturnType<typeof decodeRequest>, ndr: NdrSyntax): CallOutcome {
    const b = decoded.body;
    const stub = encodeResponseStub(
      decoded,
      {
        minorVersion: b.minorVersion,
        majorVersion: b.majorVersion,
        epid: epidFor(this.state.identity, this.state.catalog, b.kmsId, b.applicationId),
        cmid: b.cmid,
        clientTime: b.clientTime,
        currentCount: this.countFor(b.applicationId),
        activationInterval: this.state.policy.activationInterval,
        renewalInterval: this.state.policy.renewalInterval,
      },
      { random: this.randomBytes, hwid: this.state.identity.hwid },
      ndr,
    );
    return { kind: 'response', stub, event: null, error: null, probe: true };
  }

  /** Per pool: count, capacity, which thresholds the count meets. */
  status() {
    const now = this.clock.now();
    const { catalog } = this.state;
    return {
      time: new Date(now).toISOString(),
      clock: this.clock.kind,
      pools: catalog.applications.map((app) => {
        const pool = this.state.pools.get(app.id)!;
        const count = pool.countAt(now);
        const thresholds = [
          ...new Set(catalog.kmsIds.filter((k) => k.applicationId === app.id).map((k) => k.nPolicy)),
        ].sort((a, b) => a - b);
        return {
          applicationId: app.id,
          name: app.name,
          count,
          // The capacity in force: twice the highest N_policy the pool holds, within the two bounds.
          capacity: pool.capacityAt(now),
          minCapacity: pool.minCapacity,
          maxCapacity: pool.maxCapacity,
          thresholds: thresholds.map((t) => ({ requiredCount: t, met: count >= t })),
        };
      }),
      epids: { ...this.state.identity.epids },
      hwid: Buffer.from(this.state.identity.hwid).toString('hex').toUpperCase(),
      requests: { total: this.state.totals.requests, byResult: { ...this.state.totals.byResult } },
      // The cumulative request counters (never pruned; POST /reset keeps them unless asked).
      requestCounters: { ...this.state.counters },
      host: { ...this.report },
      // SoftwareLicensingService's KMS host properties by their WMI names (docs/host.md section 9).
      wmi: this.wmi(now),
      policy: { ...this.state.policy },
    };
  }

  /** The SoftwareLicensingService properties of this host now (WMI names). */
  wmi(now = this.clock.now()) {
    const windows = this.state.pools.get(this.state.catalog.applications[0]!.id);
    return wmiProperties(this.state.counters, {
      ...this.report,
      currentCount: windows ? windows.countAt(now) : 0,
      activationInterval: this.state.policy.activationInterval,
      renewalInterval: this.state.policy.renewalInterval,
    });
  }

  /** Every live CMID with last seen and expiry. */
  clients() {
    const now = this.clock.now();
    const out = [];
    for (const [appId, pool] of this.state.pools) {
      for (const c of pool.list(now)) {
        out.push({
          applicationId: appId,
          cmid: c.cmid,
          workstation: c.workstation,
          skuId: c.skuId,
          kmsId: c.kmsId,
          firstSeen: new Date(c.firstSeen).toISOString(),
          lastSeen: new Date(c.lastSeen).toISOString(),
          expires: new Date(c.lastSeen + CMID_RETENTION_MS).toISOString(),
        });
      }
    }
    return out;
  }

  /** Count a request for this application would see now (without counting anyone). */
  countFor(applicationId: Guid): number {
    return poolFor(this.state, applicationId).countAt(this.clock.now());
  }

  /**
   * Empties pools and history and zeroes the decision totals; identity stays, and so do the
   * cumulative request counters (a genuine host resets them only when reinstalled) unless
   * `counters` is true.
   */
  reset(opts: { counters?: boolean } = {}): { countersReset: boolean } {
    // Calls staged before the reset happened before it: commit them first (a failure is kept in the
    // group for whoever answers those calls).
    for (const g of [...this.openGroups]) {
      try {
        this.commitGroup(g);
      } catch {
        // recorded in the group
      }
    }
    for (const pool of this.state.pools.values()) pool.clear();
    // The decisions seen so far are written back as 0 (their rows outlive the store's reset).
    const zeroed = Object.fromEntries(Object.keys(this.state.totals.byResult).map((k) => [k, 0]));
    this.state.totals = { requests: 0, byResult: zeroed };
    if (opts.counters === true) this.state.counters = emptyCounters();
    this.state.seq = 0;
    this.store.reset();
    this.store.commit({ counters: this.counterRows() });
    this.state.totals.byResult = {};
    this.saveClock();
    return { countersReset: opts.counters === true };
  }
}
