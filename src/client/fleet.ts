/**
 * Simulated fleets: thousands of machines living by the real KMS client schedule against one host,
 * over months of virtual time, in seconds of real time.
 *
 * - `planFleet` decides who exists and when (CMIDs, workstation names, first contact, churn) from a
 *   seed, before any request: the plan does not depend on what the host answers.
 * - `runFleet` plays a plan against a host with a discrete-event queue (a binary heap keyed by virtual
 *   time). Each machine's first contact is a random moment of its first day; an unactivated machine
 *   retries every VLActivationInterval the host sent (120 min by default), an activated one renews every
 *   VLRenewalInterval (7 days); an activation is valid 180 days after the last successful answer
 *   (spec c, f.4, f.6). The host is in-process (KmsService.handleCall on a manual clock: real crypto,
 *   real pools, memory store) or remote (KMS over TCP plus the control API for the clock).
 * - The result is a per-day timeline: the count of each pool, machines present and activated per
 *   product class, requests and errors. fleet-output.ts renders it as CSV and SVG.
 */
import { type Catalog, defaultCatalog } from '../catalog/products.js';
import { DEFAULT_FLEET_PRODUCTS as FLEET_PRODUCTS } from '../defaults.js';
import { DAY, MINUTE } from '../host/clock.js';
import { randomGuid, SeededRandom } from '../host/random.js';
import { hresultHex } from '../kms/hresult.js';
import type { KmsVersion } from '../kms/messages.js';
import type { Guid } from '../wire/guid.js';
import { FIRST_RETRY_MIN } from './fleet-channel.js';
import { InProcessFleetHost } from './fleet-host.js';

export type MachineKind = 'windows' | 'server' | 'office';
export const MACHINE_KINDS: readonly MachineKind[] = ['windows', 'server', 'office'];

/** Realistic defaults: N_Policy 25 (Windows client), 5 (Windows Server), 5 (Office), all KMS V6. */
export const DEFAULT_FLEET_PRODUCTS: Readonly<Record<MachineKind, string>> = FLEET_PRODUCTS;

/** A client's activation stays valid this long after its last successful answer (spec f.6). */
const ACTIVATION_VALIDITY_MS = 180 * DAY;
/** Out-of-box grace a fresh volume installation has (spec f.6). */
const GRACE_MS = 30 * DAY;
/** The interval a client uses before it has heard any host (spec f.6 default). */

/** LicenseStatus values a client sends (spec c.1). */
const LICENSE = { UNLICENSED: 0, LICENSED: 1, OOB_GRACE: 2, NOTIFICATION: 5 } as const;

interface FleetProduct {
  kind: MachineKind;
  name: string;
  skuId: Guid;
  applicationId: Guid;
  kmsId: Guid;
  requiredCount: number;
  protocol: KmsVersion;
  /** Short name of the count pool (the application's vlmcsd name: Windows, Office2010, Office2013+). */
  pool: string;
}

export interface MachineSpec {
  id: number;
  kind: MachineKind;
  cmid: Guid;
  workstation: string;
  vm: boolean;
  /** Virtual time (ms since the Unix epoch) of the first contact. */
  arrive: number;
  /** Virtual time it leaves for good (no contact at or after it), or null. */
  leave: number | null;
}

export interface FleetPlan {
  seed: string;
  /** Virtual time of day 0, 00:00. */
  start: number;
  days: number;
  churn: number;
  products: Record<MachineKind, FleetProduct>;
  machines: MachineSpec[];
}

export interface FleetOptions {
  windows?: number;
  servers?: number;
  office?: number;
  days?: number;
  seed?: number | string;
  /** Each day this fraction of each class leaves for good and as many new machines arrive (0 ≤ r < 1). */
  churn?: number;
  /** Virtual start (default 2026-01-01T00:00Z). */
  start?: number | Date | string;
  /** Catalog product names (or SKU ids) per class; defaults in DEFAULT_FLEET_PRODUCTS. */
  products?: Partial<Record<MachineKind, string>>;
  catalog?: Catalog;
}

const DEFAULT_FLEET_START = Date.UTC(2026, 0, 1);
const VM_SHARE: Record<MachineKind, number> = { windows: 0.1, server: 0.6, office: 0.1 };
const NAME_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function count(v: number | undefined, d: number, what: string): number {
  const n = v ?? d;
  if (!Number.isInteger(n) || n < 0 || n > 1_000_000)
    throw new RangeError(`${what} must be an integer in 0..1000000`);
  return n;
}

function toTime(v: FleetOptions['start']): number {
  if (v === undefined) return DEFAULT_FLEET_START;
  const t = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : v.getTime();
  if (!Number.isFinite(t)) throw new RangeError(`bad start time ${String(v)}`);
  return t;
}

function resolveFleetProduct(
  kind: MachineKind,
  name: string,
  catalog: Catalog = defaultCatalog(),
): FleetProduct {
  const sku = catalog.findSku(name);
  const info = catalog.kmsId(sku.kmsId);
  const app = catalog.application(sku.applicationId);
  if (!info || !app) throw new RangeError(`${sku.name}: its KMS id or application is not in the catalog`);
  return {
    kind,
    name: sku.name,
    skuId: sku.id,
    applicationId: sku.applicationId,
    kmsId: sku.kmsId,
    requiredCount: info.nPolicy,
    protocol: info.protocolVersion,
    pool: app.vlmcsdName,
  };
}

/** Default Windows host names: DESKTOP-XXXXXXX on clients, WIN-XXXXXXXXXXX on servers. */
function workstationName(kind: MachineKind, r: SeededRandom): string {
  const n = kind === 'server' ? 11 : 7;
  let s = kind === 'server' ? 'WIN-' : 'DESKTOP-';
  for (let i = 0; i < n; i++) s += NAME_CHARS[r.below(NAME_CHARS.length)];
  return s;
}

/**
 * Who exists and when, from the seed alone. Initial machines arrive at a random moment of day 0; with
 * churn, at the start of each later day a fraction of each class (stochastically rounded) leaves for
 * good and as many new machines arrive at random moments of that day.
 */
export function planFleet(opts: FleetOptions = {}): FleetPlan {
  const catalog = opts.catalog ?? defaultCatalog();
  const sizes: Record<MachineKind, number> = {
    windows: count(opts.windows, 0, 'windows'),
    server: count(opts.servers, 0, 'servers'),
    office: count(opts.office, 0, 'office'),
  };
  const days = count(opts.days, 90, 'days');
  if (days < 1 || days > 3650) throw new RangeError('days must be 1..3650');
  const churn = opts.churn ?? 0;
  if (!(churn >= 0 && churn < 1)) throw new RangeError(`churn must be a fraction in [0, 1), got ${churn}`);
  const seed = String(opts.seed ?? 1);
  const start = toTime(opts.start);
  const products = {} as Record<MachineKind, FleetProduct>;
  for (const k of MACHINE_KINDS) {
    products[k] = resolveFleetProduct(k, opts.products?.[k] ?? DEFAULT_FLEET_PRODUCTS[k], catalog);
  }
  const root = new SeededRandom(seed);
  const rId = root.fork('identity');
  const rArrive = root.fork('arrival');
  const rChurn = root.fork('churn');
  const machines: MachineSpec[] = [];
  const present: Record<MachineKind, number[]> = { windows: [], server: [], office: [] };
  const add = (kind: MachineKind, dayStart: number) => {
    const id = machines.length;
    machines.push({
      id,
      kind,
      cmid: randomGuid(rId),
      workstation: workstationName(kind, rId),
      vm: rId.float() < VM_SHARE[kind],
      arrive: dayStart + rArrive.below(DAY),
      leave: null,
    });
    present[kind].push(id);
  };
  for (const k of MACHINE_KINDS) for (let i = 0; i < sizes[k]; i++) add(k, start);
  if (churn > 0) {
    for (let d = 1; d < days; d++) {
      const b = start + d * DAY;
      for (const k of MACHINE_KINDS) {
        const ids = present[k];
        const x = churn * ids.length;
        const n = Math.min(ids.length, Math.floor(x) + (rChurn.float() < x - Math.floor(x) ? 1 : 0));
        for (let j = 0; j < n; j++) {
          const i = rChurn.below(ids.length);
          machines[ids[i]!]!.leave = b;
          ids[i] = ids[ids.length - 1]!;
          ids.pop();
        }
        for (let j = 0; j < n; j++) add(k, b);
      }
    }
  }
  return { seed, start, days, churn, products, machines };
}

// ---------------------------------------------------------------------------------------------------
// Hosts

/** What the client made of one exchange. */
export interface ExchangeOutcome {
  /** CurrentCount of a verified answer; null for an error HRESULT or a failure. */
  count: number | null;
  /** Minutes, from the answer (0 when there was none). */
  activationInterval: number;
  renewalInterval: number;
  /** The host's error HRESULT, or 0. */
  hresult: number;
  /** `CODE: message` when the exchange failed (transport, RPC or verification), else null. */
  error: string | null;
}

export interface ExchangeRequest {
  machine: MachineSpec;
  product: FleetProduct;
  /** Virtual time of the request: the client's time stamp, and where the host's clock must be. */
  now: number;
  licenseStatus: number;
  /** Minutes left in the current license state. */
  bindingExpiration: number;
}

/** A host the fleet talks to. Calls come in non-decreasing virtual time. */
export interface FleetHost {
  readonly mode: 'in-process' | 'remote';
  readonly description: string;
  start?(plan: FleetPlan): void | Promise<void>;
  exchange(req: ExchangeRequest): ExchangeOutcome | Promise<ExchangeOutcome>;
  /**
   * Optional: `exchange` for several machines' requests in order, at once. runFleet uses it for the
   * requests of each stretch of `batchWindowMs` virtual time (read after `start`; 0: never), which
   * must be no longer than the shortest interval a machine waits between two requests.
   */
  exchangeBatch?(reqs: readonly ExchangeRequest[]): ExchangeOutcome[];
  readonly batchWindowMs?: number;
  /** Count of each pool (by application id) at virtual time `at`, as the host sees it. */
  poolCounts(
    at: number,
    applicationIds: readonly Guid[],
  ): Record<Guid, number> | Promise<Record<Guid, number>>;
  /** The ePID the host answered with, if known. */
  epid?(): string | null;
  close?(): void | Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Event queue

/**
 * A binary min-heap of machine indexes keyed by (virtual time, machine index): events at the same
 * millisecond run in machine order, so the order is a property of the plan alone.
 */
export class EventQueue {
  private readonly times: number[] = [];
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  peekTime(): number {
    return this.items.length === 0 ? Number.POSITIVE_INFINITY : this.times[0]!;
  }

  private less(i: number, j: number): boolean {
    const a = this.times[i]!;
    const b = this.times[j]!;
    return a < b || (a === b && this.items[i]! < this.items[j]!);
  }

  private swap(i: number, j: number): void {
    const t = this.times[i]!;
    this.times[i] = this.times[j]!;
    this.times[j] = t;
    const x = this.items[i]!;
    this.items[i] = this.items[j]!;
    this.items[j] = x;
  }

  push(time: number, item: number): void {
    let i = this.items.length;
    this.times.push(time);
    this.items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the earliest entry and returns its item; call only when `size > 0`. */
  pop(): number {
    const top = this.items[0]!;
    const last = this.items.length - 1;
    this.swap(0, last);
    this.times.pop();
    this.items.pop();
    let i = 0;
    const n = this.items.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(r, l) ? r : l;
      if (!this.less(c, i)) break;
      this.swap(i, c);
      i = c;
    }
    return top;
  }
}

// ---------------------------------------------------------------------------------------------------
// Simulation

interface PoolInfo {
  applicationId: Guid;
  /** Short name (Windows, Office2010, Office2013+): the key in each row's `pools`. */
  name: string;
  label: string;
  capacity: number;
}

export type PerKind = Record<MachineKind, number>;

/** The state at the end of one virtual day (just before the next day's churn). */
export interface TimelineRow {
  /** 1-based: row 1 is the end of day 0 (the first 24 h). */
  day: number;
  /** Date of that day (YYYY-MM-DD, UTC). */
  date: string;
  /** Count of each pool at the end of the day, as the host reports it. */
  pools: Record<string, number>;
  /** Machines that have arrived and not left. */
  present: PerKind;
  /** Present machines holding a valid activation. */
  activated: PerKind;
  /** Requests sent during the day. */
  requests: number;
  /** Answers with count ≥ the machine's N_Policy. */
  activations: number;
  /** Answers with count < N_Policy (the client reports 0xC004F038 and retries). */
  insufficient: number;
  /** Error HRESULTs and failed exchanges. */
  errors: number;
  /** Machines activated for the first time during the day. */
  firstActivations: number;
  arrived: number;
  left: number;
}

interface MachineOutcome {
  id: number;
  kind: MachineKind;
  cmid: Guid;
  workstation: string;
  arrive: number;
  leave: number | null;
  firstActivated: number | null;
  lastContact: number | null;
  requests: number;
  errors: number;
  /** Holds a valid activation at the end of the run. */
  activated: boolean;
}

export interface FleetResult {
  mode: 'in-process' | 'remote';
  host: string;
  seed: string;
  start: string;
  days: number;
  churn: number;
  /** Initial sizes per class. */
  fleet: PerKind;
  products: Record<MachineKind, FleetProduct>;
  pools: PoolInfo[];
  /** Distinct thresholds and the classes that need them. */
  thresholds: { requiredCount: number; kinds: MachineKind[] }[];
  timeline: TimelineRow[];
  totals: {
    machines: number;
    requests: number;
    activations: number;
    insufficient: number;
    errors: number;
    errorsByCode: Record<string, number>;
  };
  epid: string | null;
  wallMs: number;
  requestsPerSecond: number;
  machines?: MachineOutcome[];
}

export interface FleetProgress {
  day: number;
  days: number;
  requests: number;
  virtualTime: number;
}

export interface RunFleetOptions {
  /** Default: a fresh in-process host seeded from the plan. */
  host?: FleetHost;
  catalog?: Catalog;
  /** Called after each virtual day. */
  onProgress?: (p: FleetProgress) => void;
  /** Include per-machine outcomes in the result (default true). */
  machines?: boolean;
}

interface MachineState {
  spec: MachineSpec;
  product: FleetProduct;
  activatedUntil: number;
  firstActivated: number | null;
  lastContact: number | null;
  requests: number;
  errors: number;
  /** Last VLActivationInterval heard (minutes). */
  retryMinutes: number;
}

function zero(): PerKind {
  return { windows: 0, server: 0, office: 0 };
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** LicenseStatus and BindingExpiration (minutes left in that state) a client sends at `now`. */
export function licenseState(
  m: { arrive: number; activatedUntil: number },
  now: number,
): { status: number; minutes: number } {
  if (m.activatedUntil > now)
    return { status: LICENSE.LICENSED, minutes: Math.floor((m.activatedUntil - now) / MINUTE) };
  const graceEnd = m.arrive + GRACE_MS;
  if (m.activatedUntil === 0 && graceEnd > now) {
    return { status: LICENSE.OOB_GRACE, minutes: Math.floor((graceEnd - now) / MINUTE) };
  }
  return { status: LICENSE.NOTIFICATION, minutes: 0 };
}

/** Plays a plan against a host and returns the per-day timeline. */
export async function runFleet(plan: FleetPlan, opts: RunFleetOptions = {}): Promise<FleetResult> {
  const catalog = opts.catalog ?? defaultCatalog();
  const host: FleetHost =
    opts.host ?? new InProcessFleetHost({ seed: plan.seed, start: plan.start, catalog });
  const t0 = performance.now();
  // Only the classes this plan has machines of, and the pools they count in.
  const kinds = MACHINE_KINDS.filter((k) => plan.machines.some((m) => m.kind === k));
  const pools: PoolInfo[] = [];
  for (const k of kinds) {
    const p = plan.products[k];
    if (pools.some((x) => x.applicationId === p.applicationId)) continue;
    const app = catalog.application(p.applicationId);
    pools.push({
      applicationId: p.applicationId,
      name: p.pool,
      label: app?.name ?? p.pool,
      capacity: app?.cacheSize ?? 0,
    });
  }
  pools.sort(
    (a, b) =>
      catalog.applications.findIndex((x) => x.id === a.applicationId) -
      catalog.applications.findIndex((x) => x.id === b.applicationId),
  );
  const appIds = pools.map((p) => p.applicationId);
  plan.machines.forEach((m, i) => {
    if (m.id !== i) throw new RangeError(`plan.machines[${i}] has id ${m.id}: ids must be the array indexes`);
  });
  const machines: MachineState[] = plan.machines.map((spec) => ({
    spec,
    product: plan.products[spec.kind],
    activatedUntil: 0,
    firstActivated: null,
    lastContact: null,
    requests: 0,
    errors: 0,
    retryMinutes: FIRST_RETRY_MIN,
  }));
  const queue = new EventQueue();
  for (let i = 0; i < machines.length; i++) queue.push(machines[i]!.spec.arrive, i);

  const timeline: TimelineRow[] = [];
  const totals: FleetResult['totals'] = {
    machines: machines.length,
    requests: 0,
    activations: 0,
    insufficient: 0,
    errors: 0,
    errorsByCode: {},
  };
  let row = { requests: 0, activations: 0, insufficient: 0, errors: 0, firstActivations: 0 };
  const end = plan.start + plan.days * DAY;
  let day = 0;
  let boundary = plan.start + DAY;

  try {
    await host.start?.(plan);
    const closeDay = async () => {
      const dayStart = boundary - DAY;
      const c = host.poolCounts(boundary, appIds);
      const counts = isPromise(c) ? await c : c;
      const present = zero();
      const activated = zero();
      let arrived = 0;
      let left = 0;
      for (const m of machines) {
        const s = m.spec;
        if (s.arrive >= dayStart && s.arrive < boundary) arrived++;
        if (s.leave !== null && s.leave >= dayStart && s.leave < boundary) left++;
        if (s.arrive < boundary && (s.leave === null || s.leave >= boundary)) {
          present[s.kind]++;
          if (m.activatedUntil > boundary) activated[s.kind]++;
        }
      }
      const poolCounts: Record<string, number> = {};
      for (const p of pools) poolCounts[p.name] = counts[p.applicationId] ?? 0;
      timeline.push({
        day: day + 1,
        date: new Date(dayStart).toISOString().slice(0, 10),
        pools: poolCounts,
        present,
        activated,
        ...row,
        arrived,
        left,
      });
      row = { requests: 0, activations: 0, insufficient: 0, errors: 0, firstActivations: 0 };
      day++;
      boundary += DAY;
      opts.onProgress?.({ day, days: plan.days, requests: totals.requests, virtualTime: boundary - DAY });
    };

    /** The request of machine `m` at `t`, or null when it has left for good. */
    const requestOf = (m: MachineState, t: number): ExchangeRequest | null => {
      const s = m.spec;
      if (s.leave !== null && t >= s.leave) return null; // gone for good
      const lic = licenseState({ arrive: s.arrive, activatedUntil: m.activatedUntil }, t);
      return {
        machine: s,
        product: m.product,
        now: t,
        licenseStatus: lic.status,
        bindingExpiration: lic.minutes,
      };
    };
    /** Counts the outcome of `m`'s request at `t` and returns when it asks next. */
    const settle = (m: MachineState, t: number, o: ExchangeOutcome): number => {
      m.requests++;
      m.lastContact = t;
      row.requests++;
      totals.requests++;
      if (o.count !== null && o.error === null && o.hresult === 0) {
        if (o.activationInterval > 0) m.retryMinutes = o.activationInterval;
        if (o.count >= m.product.requiredCount) {
          m.activatedUntil = t + ACTIVATION_VALIDITY_MS;
          if (m.firstActivated === null) {
            m.firstActivated = t;
            row.firstActivations++;
          }
          row.activations++;
          totals.activations++;
          return t + o.renewalInterval * MINUTE;
        }
        row.insufficient++;
        totals.insufficient++;
        return t + m.retryMinutes * MINUTE;
      }
      m.errors++;
      row.errors++;
      totals.errors++;
      const code = o.error ? o.error.split(':', 1)[0]! : `hresult ${hresultHex(o.hresult)}`;
      totals.errorsByCode[code] = (totals.errorsByCode[code] ?? 0) + 1;
      return t + m.retryMinutes * MINUTE;
    };
    const window = host.exchangeBatch !== undefined ? (host.batchWindowMs ?? 0) : 0;
    const batch: ExchangeRequest[] = [];

    for (;;) {
      const t = queue.peekTime();
      while (t >= boundary && day < plan.days) await closeDay();
      if (day >= plan.days || t >= end) break;
      if (window > 0) {
        // Every request before `until`, at once: each machine asks at most once in it, and what
        // they schedule comes at `until` or later (batchWindowMs), so the order is unchanged.
        const until = Math.min(t + window, boundary, end);
        batch.length = 0;
        while (queue.peekTime() < until) {
          const when = queue.peekTime();
          const m = machines[queue.pop()]!;
          const req = requestOf(m, when);
          if (req !== null) batch.push(req);
        }
        const outcomes = host.exchangeBatch!(batch);
        for (let i = 0; i < batch.length; i++) {
          const m = machines[batch[i]!.machine.id]!;
          const next = settle(m, batch[i]!.now, outcomes[i]!);
          if (next < until) {
            throw new Error(
              `fleet: machine ${m.spec.id} asks again ${next - batch[i]!.now} ms after its request, inside the host's batch window of ${window} ms`,
            );
          }
          queue.push(next, m.spec.id);
        }
        continue;
      }
      const m = machines[queue.pop()]!;
      const req = requestOf(m, t);
      if (req === null) continue;
      const x = host.exchange(req);
      const o = isPromise(x) ? await x : x;
      queue.push(settle(m, t, o), m.spec.id);
    }
    while (day < plan.days) await closeDay();
  } finally {
    await host.close?.();
  }

  const wallMs = performance.now() - t0;
  const thresholds: FleetResult['thresholds'] = [];
  for (const k of kinds) {
    const n = plan.products[k].requiredCount;
    const th = thresholds.find((x) => x.requiredCount === n);
    if (th) th.kinds.push(k);
    else thresholds.push({ requiredCount: n, kinds: [k] });
  }
  thresholds.sort((a, b) => b.requiredCount - a.requiredCount);
  const fleet = zero();
  for (const s of plan.machines) if (s.arrive < plan.start + DAY) fleet[s.kind]++;
  const result: FleetResult = {
    mode: host.mode,
    host: host.description,
    seed: plan.seed,
    start: new Date(plan.start).toISOString(),
    days: plan.days,
    churn: plan.churn,
    fleet,
    products: plan.products,
    pools,
    thresholds,
    timeline,
    totals,
    epid: host.epid?.() ?? null,
    wallMs: Math.round(wallMs * 10) / 10,
    requestsPerSecond: wallMs > 0 ? Math.round((totals.requests / wallMs) * 1000) : 0,
  };
  if (opts.machines !== false) {
    result.machines = machines.map((m) => ({
      id: m.spec.id,
      kind: m.spec.kind,
      cmid: m.spec.cmid,
      workstation: m.spec.workstation,
      arrive: m.spec.arrive,
      leave: m.spec.leave,
      firstActivated: m.firstActivated,
      lastContact: m.lastContact,
      requests: m.requests,
      errors: m.errors,
      activated: m.activatedUntil > end && (m.spec.leave === null || m.spec.leave >= end),
    }));
  }
  return result;
}

/** `planFleet` then `runFleet`. */
export async function simulateFleet(opts: FleetOptions & RunFleetOptions = {}): Promise<FleetResult> {
  return runFleet(planFleet(opts), opts);
}

export type { InProcessHostOptions } from './fleet-host.js';
export { InProcessFleetHost, RemoteFleetHost } from './fleet-host.js';
export { fleetCsv, fleetSvg, ProgressBar, writeFleetOutputs } from './fleet-output.js';
