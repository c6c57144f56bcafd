/**
 * `startLabHost`: a whole KMS host in-process, for tests. Loopback, an ephemeral port, a manual clock
 * and a seed by default, so a test controls time and gets the same bytes on every run. Everything
 * lives on the returned object (no module-level state), so any number of hosts run side by side.
 */
import type { Logger } from 'pino';
import {
  buildCatalog,
  type Catalog,
  OFFICE2010_APP_ID,
  OFFICE2013_APP_ID,
  WINDOWS_APP_ID,
} from '../catalog/products.js';
import { type ActivateOptions, type ActivationResult, KmsClient } from '../client/client.js';
import { type Clock, type DurationInput, ManualClock, parseDuration, SystemClock } from '../host/clock.js';
import { type IdentityOptions, parseHwid } from '../host/identity.js';
import type { HostPolicy } from '../host/policy.js';
import { SeededRandom } from '../host/random.js';
import type { KmsService } from '../host/service.js';
import type { HostProfile } from '../rpc/negotiate.js';
import { type HostRuntime, type HostRuntimeOptions, startHostRuntime } from '../server/runtime.js';
import type { ServerLimits } from '../server/tcp.js';
import type { HistoryQuery, HistoryRecord, Store } from '../store/store.js';
import type { Guid } from '../wire/guid.js';
import { type ControlRoute, faultRoutes, labEventsRoute } from './control.js';
import { LabEvents } from './events.js';
import { FaultEngine, type FaultRule } from './faults.js';
import { TranscriptRecorder } from './transcript.js';

/** Default start of a lab host's manual clock. */
export const LAB_START = '2026-01-01T00:00:00.000Z';
/** Default seed: a lab host is deterministic unless told otherwise. */
export const LAB_SEED = 'kmslab';
/** Port string a lab host's bind_ack advertises by default (see `advertisedPort`). */
export const LAB_ADVERTISED_PORT = 1688;

export interface LabHostOptions {
  /** TCP port; default 0 (an ephemeral port, see `port` on the result). */
  port?: number;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Seeds ePIDs, HwId, association groups, response random values, fault probabilities. Default 'kmslab'. */
  seed?: number | string;
  /** Default 'manual' (moves only through `advance`). */
  clock?: 'manual' | 'system' | Clock;
  /** Start time of the manual clock (default 2026-01-01T00:00:00Z). */
  start?: Date | string | number;
  /** A Catalog, or raw products data (the shape of products.json). Default: the shipped catalog. */
  products?: Catalog | unknown;
  policy?: Partial<HostPolicy>;
  /** ePIDs by pool name, HwId (8 bytes or 16 hex digits), host build, LCID. */
  identity?: Omit<IdentityOptions, 'hwid'> & { hwid?: Uint8Array | string };
  /** Fault rules active from the start (see faults.ts); validated, a FaultRuleError lists the problems. */
  faults?: readonly FaultRule[];
  /** 'memory' (default), a SQLite file path, or an opened Store. */
  store?: 'memory' | string | Store;
  /** Serve the HTTP control API (with /faults): true = 127.0.0.1 on an ephemeral port. */
  control?: boolean | { port?: number; host?: string };
  /** Write a transcript: a file path (NDJSON), or true to keep it in memory (`transcript()`). */
  record?: string | true;
  /** NDR64 / BTFN host profile; default both on (a Windows 8+ host). */
  profile?: HostProfile;
  limits?: Partial<ServerLimits>;
  logger?: Logger;
  /**
   * Port the bind_ack's secondary address advertises. Default 1688, whatever port the host really
   * listens on, so transcripts are byte-identical across runs; 'actual' sends the real port. KMS
   * clients do not read it.
   */
  advertisedPort?: number | 'actual';
  /** More control-API routes. */
  extraRoutes?: ControlRoute[];
  /**
   * Anything else startHostRuntime takes (several listen addresses, durability, a health check, ...);
   * applied over the options above. `hooks` and `extraRoutes` here are added to the lab host's own.
   */
  runtime?: Partial<HostRuntimeOptions>;
}

/** What `state()` returns: per-pool counts, thresholds met, identity, totals, policy. */
export type LabHostState = ReturnType<KmsService['status']>;
export type LabHostClient = ReturnType<KmsService['clients']>[number];

export type TimeInput = number | Date | string;

export interface LabHistoryQuery extends Omit<HistoryQuery, 'from' | 'to' | 'applicationId'> {
  from?: TimeInput;
  to?: TimeInput;
  /** Application id or windows, office2010, office2013. */
  applicationId?: string;
}

/** Options of `host.activate()`: the client emulator's, minus where to connect. */
export interface LabActivateOptions extends Omit<ActivateOptions, 'host' | 'port'> {
  /** The client's clock runs this far ahead of the host's (negative: behind). Default 0. */
  clockOffset?: DurationInput;
}

/** `await using kms = await startLabHost()` closes the host at the end of the block. */
export interface LabHost extends AsyncDisposable {
  /** `host:port` of the KMS listener. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly clock: Clock;
  readonly seed: string;
  /** Host-clock time at start: fault windows given as durations count from here. */
  readonly origin: number;
  /** `http://host:port` of the control API, or null. */
  readonly controlUrl: string | null;
  readonly events: LabEvents;
  readonly faultEngine: FaultEngine;
  readonly runtime: HostRuntime;
  state(): LabHostState;
  /** Current count of one application's pool (default Windows). */
  count(application?: string): number;
  clients(): LabHostClient[];
  /** Moves the manual clock forward; resolves with the new host time (ms). */
  advance(d: DurationInput): Promise<number>;
  /** Sets the manual clock (ISO, Date, or ms). */
  setTime(t: TimeInput): Promise<number>;
  /** Replaces every fault rule (validated; throws FaultRuleError). Returns them normalised. */
  setFaults(rules: readonly FaultRule[]): FaultRule[];
  getFaults(): FaultRule[];
  /** Empties pools and history and restarts the fault counters; identity and clock stay. */
  reset(): Promise<void>;
  /** The activation history ("which machines activated, when, with what count"). */
  history(q?: LabHistoryQuery): HistoryRecord[];
  /** Runs the client emulator against this host (host clock, seeded client randomness). */
  activate(opts?: LabActivateOptions): Promise<ActivationResult[]>;
  /** Transcript lines kept in memory (`record: true`), else null. */
  transcript(): string[] | null;
  /** Stops everything and ends the event stream; idempotent. `[Symbol.asyncDispose]` calls it. */
  close(): Promise<void>;
}

const APPS: Record<string, Guid> = {
  windows: WINDOWS_APP_ID,
  office2010: OFFICE2010_APP_ID,
  office2013: OFFICE2013_APP_ID,
  office: OFFICE2013_APP_ID,
};

/** `windows`, `office2010`, `office2013` or an application id GUID. */
export function applicationId(s: string): Guid {
  return APPS[s.toLowerCase()] ?? s.toLowerCase();
}

function toMs(t: TimeInput): number {
  const v = typeof t === 'number' ? t : t instanceof Date ? t.getTime() : Date.parse(t);
  if (!Number.isFinite(v)) throw new RangeError(`not a time: ${String(t)}`);
  return v;
}

function isCatalog(p: unknown): p is Catalog {
  return typeof p === 'object' && p !== null && typeof (p as Catalog).kmsId === 'function';
}

/** Adds an offset to another clock (a client whose clock is off). */
export function offsetClock(base: Clock, offsetMs: number): Clock {
  return { kind: base.kind, now: () => base.now() + offsetMs };
}

export async function startLabHost(opts: LabHostOptions = {}): Promise<LabHost> {
  const seed = String(opts.seed ?? LAB_SEED);
  const clock: Clock =
    opts.clock === undefined || opts.clock === 'manual'
      ? new ManualClock(toMs(opts.start ?? LAB_START))
      : opts.clock === 'system'
        ? new SystemClock()
        : opts.clock;
  const catalog =
    opts.products === undefined
      ? undefined
      : isCatalog(opts.products)
        ? opts.products
        : buildCatalog(opts.products);
  const identity: IdentityOptions | undefined = opts.identity
    ? {
        ...opts.identity,
        hwid: typeof opts.identity.hwid === 'string' ? parseHwid(opts.identity.hwid) : opts.identity.hwid,
      }
    : undefined;
  if (identity && identity.hwid === undefined) delete identity.hwid;

  const events = new LabEvents();
  let engine: FaultEngine | null = null;
  const recorder =
    opts.record === undefined
      ? null
      : new TranscriptRecorder({
          clock,
          ...(opts.record === true ? { memory: true } : { path: opts.record }),
        });
  const control = opts.control
    ? { host: '127.0.0.1', port: 0, ...(opts.control === true ? {} : opts.control) }
    : undefined;
  const routes: ControlRoute[] = [];

  const { hooks: moreHooks, extraRoutes: moreRoutes, ...runtimeOverrides } = opts.runtime ?? {};
  const runtime = await startHostRuntime({
    listen: [{ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 }],
    store: opts.store ?? 'memory',
    clock,
    seed,
    ...(catalog ? { catalog } : {}),
    ...(opts.policy ? { policy: opts.policy } : {}),
    ...(identity ? { identity } : {}),
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.advertisedPort === 'actual'
      ? {}
      : { secondaryAddress: String(opts.advertisedPort ?? LAB_ADVERTISED_PORT) }),
    hooks: {
      // The engine's rules first, then a seam the caller passed in runtime.hooks.
      faults: {
        accept: (peer) => (engine?.accept(peer) ?? true) && (moreHooks?.faults?.accept(peer) ?? true),
        bind: (info) => engine?.bind(info) ?? moreHooks?.faults?.bind(info) ?? null,
        call: (req, info) => engine?.call(req, info) ?? moreHooks?.faults?.call(req, info) ?? null,
      },
      ...(recorder || moreHooks?.onPdu
        ? {
            onPdu: (dir: 'c2s' | 's2c', conn: number, bytes: Uint8Array) => {
              recorder?.pdu(dir, conn, bytes);
              moreHooks?.onPdu?.(dir, conn, bytes);
            },
          }
        : {}),
    },
    ...(control
      ? {
          control,
          extraRoutes: [
            // Delegates, so routes can be added once the engine exists.
            async (req, res, url) => {
              for (const r of routes) if (await r(req, res, url)) return true;
              return false;
            },
            ...(moreRoutes ?? []),
          ],
          onControlReset: () => {
            engine?.resetCounters();
            events.push({ type: 'reset', time: clock.now() });
          },
        }
      : {}),
    ...runtimeOverrides,
  });
  const { service, server } = runtime;
  const origin = clock.now();
  engine = new FaultEngine({ seed, clock, origin, catalog: service.state.catalog });
  engine.onFault((f) => {
    recorder?.fault(f);
    events.push(f);
  });
  try {
    if (opts.faults !== undefined) engine.setRules(opts.faults);
  } catch (e) {
    await runtime.close();
    throw e;
  }
  routes.push(faultRoutes(engine), labEventsRoute(runtime.store, events), ...(opts.extraRoutes ?? []));
  service.onEvent((e) => events.push(e));
  server.observe((o) => {
    if (o.kind === 'connection-open') {
      recorder?.open(o.connectionId);
      events.push({
        type: 'connection',
        state: 'open',
        time: clock.now(),
        connectionId: o.connectionId,
        peer: o.peer,
      });
    } else if (o.kind === 'connection-close') {
      events.push({
        type: 'connection',
        state: 'close',
        time: clock.now(),
        connectionId: o.connectionId,
        peer: o.peer,
      });
    } else if (o.kind === 'connection-rejected') {
      events.push({
        type: 'connection',
        state: 'refused',
        time: clock.now(),
        connectionId: null,
        peer: o.peer,
        reason: o.reason,
      });
    }
  });
  recorder?.header({
    seed,
    clock: clock.kind,
    identity: {
      epids: { ...service.state.identity.epids },
      hwid: Buffer.from(service.state.identity.hwid).toString('hex').toUpperCase(),
    },
    profile: runtimeOverrides.profile ?? opts.profile ?? { ndr64: true, btfn: true },
  });

  const bound = runtime.addresses[0]!;
  const hostText = bound.host.includes(':') ? `[${bound.host}]` : bound.host;
  const manual = (): ManualClock => {
    if (!(clock instanceof ManualClock))
      throw new TypeError('this lab host runs on the system clock; start it with clock: "manual"');
    return clock;
  };
  let clientSeq = 0;
  let closed = false;
  const fe = engine;

  const lab: LabHost = {
    address: `${hostText}:${bound.port}`,
    host: bound.host,
    port: bound.port,
    clock,
    seed,
    origin,
    controlUrl: runtime.control
      ? `http://${runtime.control.address.host}:${runtime.control.address.port}`
      : null,
    events,
    faultEngine: fe,
    runtime,
    state: () => service.status(),
    count: (app = 'windows') => service.countFor(applicationId(app)),
    clients: () => service.clients(),
    async advance(d) {
      const ms = parseDuration(d);
      if (ms < 0) throw new RangeError('advance must not be negative (use setTime)');
      const t = manual().advance(ms);
      service.saveClock();
      return t;
    },
    async setTime(t) {
      manual().set(toMs(t));
      service.saveClock();
      return clock.now();
    },
    setFaults: (rules) => fe.setRules(rules),
    getFaults: () => fe.rules,
    async reset() {
      service.reset();
      fe.resetCounters();
      events.push({ type: 'reset', time: clock.now() });
    },
    history(q = {}) {
      const { from, to, applicationId: app, ...rest } = q;
      const query: HistoryQuery = { ...rest };
      if (from !== undefined) query.from = toMs(from);
      if (to !== undefined) query.to = toMs(to);
      if (app !== undefined) query.applicationId = applicationId(app);
      if (query.cmid) query.cmid = query.cmid.toLowerCase();
      return service.store.history(query);
    },
    async activate(o = {}) {
      const { clockOffset, requests, newConnection, ...rest } = o;
      clientSeq += 1;
      const client = new KmsClient({
        workstation: `LAB-PC-${clientSeq}`,
        random: new SeededRandom(`${seed}/client/${clientSeq}`),
        ...rest,
        clock: offsetClock(rest.clock ?? clock, clockOffset === undefined ? 0 : parseDuration(clockOffset)),
        host: bound.host,
        port: bound.port,
      });
      return client.run(requests ?? 1, newConnection ?? false);
    },
    transcript: () => recorder?.lines() ?? null,
    async close() {
      if (closed) return;
      closed = true;
      await runtime.close();
      recorder?.close();
      events.end();
    },
    [Symbol.asyncDispose]: () => lab.close(),
  };
  return lab;
}
