import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { type Catalog, defaultCatalog } from '../catalog/products.js';
import { type Clock, ManualClock, type Scheduler, SystemClock } from '../host/clock.js';
import type { IdentityOptions } from '../host/identity.js';
import type { HostPolicy } from '../host/policy.js';
import { SeededRandom } from '../host/random.js';
import { HEALTH_CHECK_CMID, KmsService } from '../host/service.js';
import { openMemoryStore } from '../store/memory.js';
import type { SqliteStore } from '../store/sqlite.js';
import type { Store, StoreOptions } from '../store/store.js';
import type { createControlApi } from './control-api.js';
import { isLoopbackAddress } from './control-guard.js';
import type { HistoryPruner } from './history-pruner.js';
import type { HostMetrics } from './metrics.js';
import { KmsServer, type ListenAddress, type ServerHooks, type ServerLimits } from './tcp.js';

/** Everything that makes one running host: store, service, TCP listeners, optional control API. */
export interface HostRuntimeOptions {
  listen?: ListenAddress[];
  /** 'memory', a file path, or an opened Store. */
  store?: 'memory' | string | Store;
  durability?: 'normal' | 'full';
  /**
   * History rows kept, the newest: memory store default 10,000 (StoreOptions.historyLimit), SQLite
   * default 1,000,000 (src/store/prune.ts DEFAULT_RETENTION).
   */
  historyLimit?: number;
  /** SQLite store: history rows older than this many days (host clock) are pruned; default 90. */
  historyDays?: number;
  /** SQLite store: move a damaged store file aside and start an empty one instead of refusing. */
  moveDamagedStore?: boolean;
  clock?: 'system' | 'manual' | Clock;
  /** Seed for ePIDs, HwId, assoc groups and response random values; random when absent. */
  seed?: number | string;
  catalog?: Catalog;
  policy?: Partial<HostPolicy>;
  identity?: IdentityOptions;
  profile?: { ndr64: boolean; btfn: boolean };
  limits?: Partial<ServerLimits>;
  hooks?: ServerHooks;
  /** The clock of the TCP edge's deadlines (idle, lifetime, injected delays); default the system clock. */
  edgeClock?: Scheduler;
  /** Port string the bind_ack advertises (default: the listening port); see ServerOptions. */
  secondaryAddress?: string;
  control?: ListenAddress;
  /**
   * Bearer token the control API requires on every request (but the dashboard's static files). A
   * control address that is not loopback refuses to start without one (docs/robustness.md).
   */
  controlToken?: string;
  /** Host names the control API answers besides loopback names and IP literals (a reverse proxy's). */
  controlHostAllow?: string[];
  logger?: Logger;
  /** Extra control routes (faults, metrics, dashboard). */
  extraRoutes?: Parameters<typeof createControlApi>[0]['extraRoutes'];
  healthCheck?: (addr: ListenAddress) => Promise<Record<string, unknown>>;
  /** Called after the control API moved the manual clock or reset the host (the lab harness listens). */
  onControlClockChange?: () => void;
  onControlReset?: () => void;
  /** GET /metrics and the dashboard (GET /) on the control port; default true. */
  observability?: boolean;
}

/** `await using runtime = await startHostRuntime()` closes it at the end of the block. */
export interface HostRuntime extends AsyncDisposable {
  service: KmsService;
  server: KmsServer;
  clock: Clock;
  store: Store;
  logger: Logger;
  seed: string;
  addresses: ListenAddress[];
  control: { server: http.Server; address: ListenAddress } | null;
  /** This host's Prometheus metrics (own registry), when it has a control port. */
  metrics: HostMetrics | null;
  /** History retention of a SQLite store (null for the memory store, which bounds itself). */
  pruner: HistoryPruner | null;
  close(): Promise<void>;
}

export const DEFAULT_LISTEN: ListenAddress = { host: '127.0.0.1', port: 1688 };

/**
 * The control API with its metrics (prom-client) and dashboard, loaded only for a host that has a
 * control port: a bare host does not pay for them.
 */
async function loadControlModules(observability: boolean) {
  const [api, metrics, dashboard] = await Promise.all([
    import('./control-api.js'),
    observability ? import('./metrics.js') : null,
    observability ? import('./dashboard/index.js') : null,
  ]);
  return {
    createControlApi: api.createControlApi,
    createMetrics: metrics?.createMetrics ?? null,
    dashboardRoute: dashboard?.dashboardRoute ?? null,
    publicPaths: dashboard?.DASHBOARD_PUBLIC_PATHS ?? new Set<string>(),
  };
}

/**
 * `openStore`, except that store/store.js (and with it store/sqlite.js and better-sqlite3) is loaded
 * only for a file store; the memory store is what openStore('memory') gives.
 */
async function openRuntimeStore(spec: string, opts: StoreOptions): Promise<Store> {
  if (spec === 'memory' || spec === ':memory:') return openMemoryStore(opts);
  const { openStore } = await import('../store/store.js');
  return openStore(spec, opts);
}

/** Retention of a SQLite store's history: `historyLimit` rows or `historyDays` days (defaults 1,000,000 / 90). */
async function startPruner(
  store: Store,
  clock: Clock,
  logger: Logger,
  opts: HostRuntimeOptions,
): Promise<HistoryPruner> {
  const [{ SqlitePruner, DEFAULT_RETENTION }, { HistoryPruner }] = await Promise.all([
    import('../store/prune.js'),
    import('./history-pruner.js'),
  ]);
  const policy = {
    maxRows: opts.historyLimit ?? DEFAULT_RETENTION.maxRows,
    maxAgeMs: opts.historyDays !== undefined ? opts.historyDays * 86_400_000 : DEFAULT_RETENTION.maxAgeMs,
  };
  const pruner = new SqlitePruner((store as SqliteStore).db);
  return new HistoryPruner({ pruner, policy, clock, logger }).start();
}

export async function startHostRuntime(opts: HostRuntimeOptions = {}): Promise<HostRuntime> {
  if (opts.control && !opts.controlToken && !isLoopbackAddress(opts.control.host)) {
    const { host, port } = opts.control;
    throw new RangeError(
      `control API on ${host.includes(':') ? `[${host}]` : host}:${port} is not loopback: anyone who can reach it could reset the host; ` +
        'give it a token (--control-token FILE or KMSLAB_CONTROL_TOKEN) or keep it on 127.0.0.1',
    );
  }
  const controlModules = opts.control ? await loadControlModules(opts.observability !== false) : null;
  const logger = opts.logger ?? pino({ level: 'silent' });
  const seed = String(opts.seed ?? randomBytes(6).readUIntBE(0, 6));
  const random = new SeededRandom(seed);
  const clock: Clock =
    opts.clock === 'manual'
      ? new ManualClock()
      : opts.clock === 'system' || opts.clock === undefined
        ? new SystemClock()
        : opts.clock;
  const store =
    typeof opts.store === 'object'
      ? opts.store
      : await openRuntimeStore(opts.store ?? 'memory', {
          durability: opts.durability ?? 'normal',
          ...(opts.historyLimit !== undefined ? { historyLimit: opts.historyLimit } : {}),
          ...(opts.moveDamagedStore ? { moveDamaged: true } : {}),
          onWarning: (message) => logger.warn({ store: opts.store }, message),
        });
  const pruner = store.kind === 'sqlite' ? await startPruner(store, clock, logger, opts) : null;
  const service = new KmsService({
    clock,
    random: random.fork('host'),
    store,
    catalog: opts.catalog ?? defaultCatalog(),
    policy: opts.policy,
    identity: opts.identity,
  });
  if (pruner) service.onEvent(() => pruner.noteRow());
  const server = new KmsServer({
    listen: opts.listen ?? [DEFAULT_LISTEN],
    service,
    logger,
    random: random.fork('rpc'),
    profile: opts.profile,
    limits: opts.limits,
    hooks: opts.hooks,
    ...(opts.edgeClock !== undefined ? { scheduler: opts.edgeClock } : {}),
    ...(opts.secondaryAddress !== undefined ? { secondaryAddress: opts.secondaryAddress } : {}),
  });
  const metrics = controlModules?.createMetrics ? controlModules.createMetrics({ service, server }) : null;
  let addresses: ListenAddress[];
  try {
    addresses = await server.start();
  } catch (e) {
    pruner?.stop();
    // All or nothing: close the listeners that were bound before the one that failed.
    await server.close();
    store.close();
    throw e;
  }
  // What the host reports as KeyManagementServiceListeningPort (slmgr /dlv "Listening on Port").
  service.report.listeningPort = addresses[0]?.port ?? null;
  let control: HostRuntime['control'] = null;
  if (opts.control && controlModules) {
    const first = addresses[0]!;
    const { createControlApi, dashboardRoute, publicPaths } = controlModules;
    const api = createControlApi({
      service,
      logger,
      token: opts.controlToken ?? null,
      allowHosts: opts.controlHostAllow ?? [],
      publicPaths,
      extraRoutes: [
        ...(opts.extraRoutes ?? []),
        ...(metrics && dashboardRoute ? [metrics.route, dashboardRoute({ catalog: opts.catalog })] : []),
      ],
      ...(opts.onControlClockChange ? { onClockChange: opts.onControlClockChange } : {}),
      ...(opts.onControlReset ? { onReset: opts.onControlReset } : {}),
      healthCheck: () => (opts.healthCheck ? opts.healthCheck(first) : selfCheck(first, service)),
    });
    await new Promise<void>((resolve, reject) => {
      // All or nothing: a control port that cannot be bound closes the KMS listeners and the store.
      api.once(
        'error',
        (e) =>
          void server.close().then(() => {
            pruner?.stop();
            metrics?.dispose();
            store.close();
            reject(e);
          }, reject),
      );
      api.listen(opts.control!.port, opts.control!.host, () => resolve());
    });
    const a = api.address() as AddressInfo;
    control = { server: api, address: { host: a.address, port: a.port } };
    if (!isLoopbackAddress(a.address))
      logger.warn(
        { control: `${a.address}:${a.port}` },
        'the control API is reachable from other machines: anyone with the token can reset the host, move its clock and read every CMID; keep the token secret, or use --control 127.0.0.1:PORT',
      );
  }
  let closed = false;
  const runtime: HostRuntime = {
    service,
    server,
    clock,
    store,
    logger,
    seed,
    addresses,
    control,
    metrics,
    pruner,
    async close() {
      if (closed) return;
      closed = true;
      if (control) {
        control.server.closeAllConnections?.();
        await new Promise<void>((r) => control!.server.close(() => r()));
      }
      await server.close();
      metrics?.dispose();
      service.saveClock();
      pruner?.stop();
      store.close();
    },
    [Symbol.asyncDispose]: () => runtime.close(),
  };
  return runtime;
}

/**
 * /healthz: a real bind and V6 activation against our own listener, with the probe CMID the service
 * answers without counting (so the check cannot move the count it reports).
 */
async function selfCheck(addr: ListenAddress, service: KmsService): Promise<Record<string, unknown>> {
  const host = addr.host === '0.0.0.0' ? '127.0.0.1' : addr.host === '::' ? '::1' : addr.host;
  const { activate } = await import('../client/client.js');
  const started = performance.now();
  const [r] = await activate({
    host,
    port: addr.port,
    product: 'Windows 10/11 Enterprise',
    cmid: HEALTH_CHECK_CMID,
    workstation: 'kmslab-healthz',
    clock: service.clock,
    timeoutMs: 5000,
  });
  if (!r || r.error || r.epid === null) {
    throw new Error(`self-activation failed: ${r?.error?.message ?? 'no result'}`);
  }
  return {
    listener: `${host}:${addr.port}`,
    protocol: r.protocol,
    epid: r.epid,
    count: r.count,
    ms: Math.round((performance.now() - started) * 10) / 10,
  };
}
