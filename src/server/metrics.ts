import type http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RequestCounters } from '../host/counters.js';
import type { KmsService } from '../host/service.js';
import { hresultHex } from '../kms/hresult.js';
import type { Guid } from '../wire/guid.js';
import type { ControlApiOptions } from './control-api.js';
import type { KmsServer, ServerObservation } from './tcp.js';

/**
 * Prometheus metrics of one host, on `GET /metrics` of its control API. Every host has its own
 * Registry (never prom-client's global one): a test process runs many hosts at once.
 *
 * Event-driven counters come from `server.observe()`; pool gauges are computed at scrape time from the
 * service, at the service's (possibly virtual) clock. See docs/observability.md.
 */
export type ExtraRoute = NonNullable<ControlApiOptions['extraRoutes']>[number];

export interface MetricsSources {
  service: KmsService;
  server: KmsServer;
}

export interface HostMetrics {
  registry: Registry;
  /** Handles `GET /metrics`; every other request is left to the next route. */
  route: ExtraRoute;
  /** The exposition text (what `GET /metrics` answers). */
  text(): Promise<string>;
  /** Stops observing the server (the registry stays readable). */
  dispose(): void;
}

export interface MetricsOptions {
  /** Path of the exposition endpoint (default `/metrics`). */
  path?: string;
  /** Latency histogram buckets in seconds. */
  latencyBuckets?: number[];
}

/** In-process calls take tens of microseconds; a store commit with fsync takes milliseconds. */
export const DEFAULT_LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

/** The RPC fault status the TCP edge answers when a call fails with a non-protocol error (tcp.ts). */
const SERVER_ERROR_FAULT = 0x1c010001;

export function createMetrics(sources: MetricsSources, opts: MetricsOptions = {}): HostMetrics {
  const { service, server } = sources;
  const path = opts.path ?? '/metrics';
  const registry = new Registry();
  const registers = [registry];
  const catalog = service.state.catalog;
  const appLabel = (id: Guid): string => catalog.application(id)?.vlmcsdName ?? 'unknown';

  const requests = new Counter({
    name: 'kmslab_requests_total',
    help: 'KMS activation calls answered, by KMS protocol version, application (count pool), result (HRESULT in the response stub, or rpc_fault) and NDR transfer syntax.',
    labelNames: ['protocol', 'application', 'result', 'ndr'] as const,
    registers,
  });
  const decisions = new Counter({
    name: 'kmslab_activation_decisions_total',
    help: "Decoded activation requests by application and decision: activated (count >= the client's threshold), count_insufficient (the client reports 0xC004F038) or refused (error HRESULT).",
    labelNames: ['application', 'decision'] as const,
    registers,
  });
  const latency = new Histogram({
    name: 'kmslab_request_duration_seconds',
    help: 'Time the host took for one KMS call (decode, pool update, store commit, encrypt), in seconds.',
    labelNames: ['protocol'] as const,
    buckets: opts.latencyBuckets ?? DEFAULT_LATENCY_BUCKETS,
    registers,
  });
  const connections = new Counter({
    name: 'kmslab_connections_total',
    help: 'TCP connections accepted.',
    registers,
  });
  const rejected = new Counter({
    name: 'kmslab_connections_rejected_total',
    help: 'TCP connections refused at accept: reason limit (max connections) or fault (injected).',
    labelNames: ['reason'] as const,
    registers,
  });
  const closed = new Counter({
    name: 'kmslab_connections_closed_total',
    help:
      'TCP connections closed, by reason: peer, protocol, idle, lifetime, unread (maxUnsentBytes), ' +
      'request-limit, input-overflow, evicted (made room at the connection cap), fault, bug, shutdown.',
    labelNames: ['reason'] as const,
    registers,
  });
  new Gauge({
    name: 'kmslab_open_connections',
    help: 'TCP connections open now.',
    registers,
    collect() {
      this.set(server.openConnections);
    },
  });
  const healthChecks = new Counter({
    name: 'kmslab_health_checks_total',
    help: 'Self-activations of GET /healthz answered (a real but uncounted V6 exchange; not in kmslab_requests_total).',
    registers,
  });
  const binds = new Counter({
    name: 'kmslab_binds_total',
    help: 'RPC binds (and alter_contexts) acknowledged.',
    registers,
  });
  const faults = new Counter({
    name: 'kmslab_rpc_faults_total',
    help: 'RPC fault PDUs answered to calls, by NCA status (hex).',
    labelNames: ['status'] as const,
    registers,
  });
  const protocolErrors = new Counter({
    name: 'kmslab_protocol_errors_total',
    help: 'Malformed input by layer: rpc (the connection was closed) or kms (the call was answered with an error).',
    labelNames: ['layer', 'code'] as const,
    registers,
  });
  const storeErrors = new Counter({
    name: 'kmslab_store_errors_total',
    help: 'KMS calls that failed with a non-protocol error (store failure or bug) and were answered with an RPC fault.',
    registers,
  });

  const poolLabels = ['application', 'application_id'] as const;
  new Gauge({
    name: 'kmslab_pool_count',
    help: 'Live CMIDs in the count pool now (seen within 30 days): the count the next new client would push up by one.',
    labelNames: poolLabels,
    registers,
    collect() {
      this.reset();
      const now = service.clock.now();
      for (const app of catalog.applications) {
        const pool = service.state.pools.get(app.id);
        if (pool) this.set({ application: app.vlmcsdName, application_id: app.id }, pool.countAt(now));
      }
    },
  });
  new Gauge({
    name: 'kmslab_pool_capacity',
    help: 'CMIDs the pool keeps at most now: 2 x the highest RequiredClientCount among the CMIDs it holds, within its bounds (the least recently seen is evicted).',
    labelNames: poolLabels,
    registers,
    collect() {
      this.reset();
      const now = service.clock.now();
      for (const app of catalog.applications) {
        const pool = service.state.pools.get(app.id);
        if (pool) this.set({ application: app.vlmcsdName, application_id: app.id }, pool.capacityAt(now));
      }
    },
  });
  cumulativeRequestCounters(service, registers);
  const thresholds = poolThresholds(service);
  new Gauge({
    name: 'kmslab_pool_threshold_met',
    help: 'Whether the pool count meets a product threshold (RequiredClientCount: 25 Windows client, 5 Windows Server and Office): 1 or 0.',
    labelNames: ['application', 'required_count'] as const,
    registers,
    collect() {
      this.reset();
      const now = service.clock.now();
      for (const { app, required } of thresholds) {
        const count = service.state.pools.get(app.id)?.countAt(now) ?? 0;
        this.set(
          { application: app.vlmcsdName, required_count: String(required) },
          count >= required ? 1 : 0,
        );
      }
    },
  });
  new Gauge({
    name: 'kmslab_pool_would_activate_clients',
    help: 'Live CMIDs of products with this threshold that would activate on their next request (the pool count meets their threshold); 0 when it does not. CMIDs of KMS ids the catalog does not know are not counted.',
    labelNames: ['application', 'required_count'] as const,
    registers,
    collect() {
      this.reset();
      const now = service.clock.now();
      for (const { app, required } of thresholds) {
        const pool = service.state.pools.get(app.id);
        if (!pool) continue;
        const live = pool.list(now);
        const met = live.length >= required;
        const n = met ? live.filter((c) => catalog.kmsId(c.kmsId)?.nPolicy === required).length : 0;
        this.set({ application: app.vlmcsdName, required_count: String(required) }, n);
      }
    },
  });
  new Gauge({
    name: 'kmslab_clock_time_seconds',
    help: "The host's clock (virtual with --clock manual), seconds since the Unix epoch.",
    registers,
    collect() {
      this.set(service.clock.now() / 1000);
    },
  });
  new Gauge({
    name: 'kmslab_history_records',
    help: 'Rows in the activation history of the store.',
    registers,
    collect() {
      this.set(service.store.historyCount());
    },
  });

  const onObservation = (o: ServerObservation): void => {
    switch (o.kind) {
      case 'connection-open':
        connections.inc();
        break;
      case 'connection-rejected':
        rejected.inc({ reason: o.reason });
        break;
      case 'bind':
        binds.inc();
        break;
      case 'protocol-error':
        protocolErrors.inc({ layer: 'rpc', code: o.code });
        break;
      case 'call': {
        const { outcome } = o;
        // The /healthz self-activation is no client's request (and has no event): counted apart.
        if (outcome.kind === 'response' && outcome.probe) {
          healthChecks.inc();
          break;
        }
        const ev = outcome.event;
        const protocol = ev ? String(ev.protocol) : 'unknown';
        let result: string;
        if (outcome.kind === 'fault') {
          faults.inc({ status: hex8(outcome.status) });
          result = 'rpc_fault';
        } else {
          // Without an event the message could not be decoded: the host answered 0x8007000D (service.ts).
          result = hresultHex(ev ? ev.hresult : 0x8007000d);
        }
        requests.inc({
          protocol,
          application: ev ? appLabel(ev.applicationId) : 'unknown',
          result,
          ndr: o.ndr,
        });
        if (ev)
          decisions.inc({ application: appLabel(ev.applicationId), decision: ev.decision.replace('-', '_') });
        if (outcome.error) protocolErrors.inc({ layer: 'kms', code: outcome.error.code });
        latency.observe({ protocol }, o.durationMs / 1000);
        break;
      }
      case 'call-error':
        // A call that failed for a reason other than bad input (the store, or a bug): tcp.ts answered it
        // with a server-error fault.
        storeErrors.inc();
        faults.inc({ status: hex8(SERVER_ERROR_FAULT) });
        break;
      case 'connection-close':
        closed.inc({ reason: o.reason });
        break;
    }
  };
  const unsubscribe = server.observe(onObservation);
  processMetrics(registers);

  const route: ExtraRoute = async (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => {
    if (url.pathname !== path) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return true;
    }
    const body = await registry.metrics();
    res.writeHead(200, {
      'content-type': registry.contentType,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };

  return {
    registry,
    route,
    text: () => registry.metrics(),
    dispose: () => {
      unsubscribe();
    },
  };
}

/**
 * The process's own figures under their usual Prometheus names, read at scrape time. Not prom-client's
 * collectDefaultMetrics: that starts observers per registry which nothing stops, and a test process
 * creates and drops many hosts (one registry each). Several hosts in one process report the same values.
 */
function processMetrics(registers: Registry[]): void {
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes (the whole process).',
    registers,
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Counter({
    name: 'process_cpu_seconds_total',
    help: 'User and system CPU time spent by the process, in seconds.',
    registers,
    collect() {
      const u = process.cpuUsage();
      this.reset();
      this.inc((u.user + u.system) / 1e6);
    },
  });
  new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since the Unix epoch, in seconds.',
    registers,
    collect() {
      this.set(Math.round((Date.now() - process.uptime() * 1000) / 1000));
    },
  });
  const heap = (name: string, help: string, read: (m: NodeJS.MemoryUsage) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(process.memoryUsage()));
      },
    });
  heap('nodejs_heap_size_total_bytes', 'V8 heap size reserved, in bytes.', (m) => m.heapTotal);
  heap('nodejs_heap_size_used_bytes', 'V8 heap size used, in bytes.', (m) => m.heapUsed);
  heap(
    'nodejs_external_memory_bytes',
    'Memory of C++ objects bound to JS objects, in bytes.',
    (m) => m.external,
  );
}

/**
 * The host's cumulative request counters (slmgr /dlv, WMI's KeyManagementService*Requests), read from
 * the service at scrape time: they are kept in the store and survive restarts, so they do not restart
 * at 0 with the process as the event-driven counters above do.
 */
function cumulativeRequestCounters(service: KmsService, registers: Registry[]): void {
  const read = (name: string, help: string, value: (c: RequestCounters) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(value(service.state.counters));
      },
    });
  read(
    'kmslab_kms_total_requests_total',
    'KMS requests received since the store was created (WMI KeyManagementServiceTotalRequests; slmgr /dlv "Total requests received"); survives restarts.',
    (c) => c.total,
  );
  read(
    'kmslab_kms_failed_requests_total',
    'KMS requests not answered with a count: an error HRESULT or an RPC fault (WMI KeyManagementServiceFailedRequests; slmgr /dlv "Failed requests received").',
    (c) => c.failed,
  );
  const statuses: [string, keyof RequestCounters][] = [
    ['unlicensed', 'unlicensed'],
    ['licensed', 'licensed'],
    ['oob_grace', 'oobGrace'],
    ['oot_grace', 'ootGrace'],
    ['non_genuine_grace', 'nonGenuineGrace'],
    ['notification', 'notification'],
    ['extended_grace', 'extendedGrace'],
    ['other', 'otherLicenseStatus'],
  ];
  new Counter({
    name: 'kmslab_kms_requests_by_license_status_total',
    help: "Decoded KMS requests by the client's LicenseStatus (WMI KeyManagementServiceUnlicensedRequests, …LicensedRequests, …OOBGraceRequests, …OOTGraceRequests, …NonGenuineGraceRequests, …NotificationRequests; extended_grace and other have no WMI property).",
    labelNames: ['license_status'] as const,
    registers,
    collect() {
      this.reset();
      const c = service.state.counters;
      for (const [label, key] of statuses) this.inc({ license_status: label }, c[key]);
    },
  });
}

/** Every (pool, threshold) pair of the catalog, thresholds ascending. */
function poolThresholds(service: KmsService) {
  const { catalog } = service.state;
  const out: { app: (typeof catalog.applications)[number]; required: number }[] = [];
  for (const app of catalog.applications) {
    const t = [...new Set(catalog.kmsIds.filter((k) => k.applicationId === app.id).map((k) => k.nPolicy))];
    for (const required of t.sort((a, b) => a - b)) out.push({ app, required });
  }
  return out;
}

function hex8(n: number): string {
  return `0x${(n >>> 0).toString(16).toUpperCase().padStart(8, '0')}`;
}
