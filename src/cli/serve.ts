import path from 'node:path';
import type { Command } from 'commander';
import { INPUT_LIMITS, InputFileError, readTextBounded } from '../bounded-read.js';
import { DEFAULT_STORE_PATH } from '../defaults.js';
import { GENUINE_MAX_SKEW_MS, type HostPolicy } from '../host/policy.js';
import { isLoopbackAddress } from '../server/control-guard.js';
import type { DnsResponder } from '../server/dns.js';
import type { HostRuntime, HostRuntimeOptions } from '../server/runtime.js';
import type { ListenAddress } from '../server/tcp.js';
import { UsageError } from './errors.js';
import { prepareParentDir, readSettingsFile } from './files.js';
import { formatHostPort } from './options.js';
import { scenarioServeConfig, startServeLab } from './scenario.js';
import {
  parseServeSettings,
  SERVE_FLAGS,
  type ServeConfig,
  type ServeKey,
  type ServeSettings,
} from './serve-config.js';

export type { ServeConfig } from './serve-config.js';

/*
 * This module only defines the command (main.ts loads it for every command and for --help): the host
 * (server/runtime.js) and pino load when serve runs, and then only what the flags ask for: the
 * scenario loader (yaml) with --scenario, the DNS responder (dns-packet) with --dns, the pretty
 * printer with --pretty, and, in server/runtime.ts, the control API with its metrics (prom-client)
 * with --control and better-sqlite3 for a file store.
 *
 * A new flag: one line in SERVE_SETTINGS and SERVE_FLAGS (serve-config.ts), and its use below.
 */

const collect = (v: string, prev: string[] = []) => [...prev, v];
const REPEATABLE: ReadonlySet<ServeKey> = new Set(['listen', 'epid', 'controlHostAllow']);

/** Host options from serve settings (checked here, so a test or a caller may pass raw values). */
export function buildRuntimeOptions(config: ServeConfig): HostRuntimeOptions {
  const c = parseServeSettings(config);
  const policy: Partial<HostPolicy> = {};
  if (c.refuseUnknown) policy.refuseUnknown = true;
  if (c.refuseRetail) policy.refuseRetail = true;
  if (c.refuseMismatch) policy.refuseMismatch = true;
  if (c.lenient) policy.lenient = true;
  if (c.maxClockSkew !== undefined && c.maxClockSkew !== false)
    policy.maxClockSkewMs = c.maxClockSkew === true ? GENUINE_MAX_SKEW_MS : c.maxClockSkew;
  if (c.activationInterval !== undefined) policy.activationInterval = c.activationInterval;
  if (c.renewalInterval !== undefined) policy.renewalInterval = c.renewalInterval;
  const epids = Object.fromEntries(c.epid ?? []);
  const limits: NonNullable<HostRuntimeOptions['limits']> = {};
  if (c.idleTimeout !== undefined) limits.idleTimeoutMs = c.idleTimeout;
  if (c.maxConnections !== undefined) limits.maxConnections = c.maxConnections;
  if (c.maxPduSize !== undefined) limits.maxPduSize = c.maxPduSize;
  if (c.maxCallSize !== undefined) limits.maxCallSize = c.maxCallSize;
  if (c.maxConnectionLifetime !== undefined) limits.maxConnectionLifetimeMs = c.maxConnectionLifetime;
  if (c.maxUnsentBytes !== undefined) limits.maxUnsentBytes = c.maxUnsentBytes;
  if (c.maxRequestsPerConnection !== undefined) limits.maxRequestsPerConnection = c.maxRequestsPerConnection;
  if (c.maxActivationLogLines !== undefined) limits.maxActivationLogLinesPerSecond = c.maxActivationLogLines;
  const opts: HostRuntimeOptions = {
    listen: c.listen && c.listen.length > 0 ? c.listen : [{ host: '127.0.0.1', port: 1688 }],
    store: c.store ?? DEFAULT_STORE_PATH,
    durability: c.durability ?? 'normal',
    ...(c.historyLimit !== undefined ? { historyLimit: c.historyLimit } : {}),
    ...(c.historyDays !== undefined ? { historyDays: c.historyDays } : {}),
    ...(c.moveDamagedStore ? { moveDamagedStore: true } : {}),
    ...(c.controlHostAllow?.length ? { controlHostAllow: c.controlHostAllow } : {}),
    clock: c.clock ?? 'system',
    policy,
    identity: {
      ...(Object.keys(epids).length > 0 ? { epids } : {}),
      ...(c.hwid ? { hwid: c.hwid } : {}),
      ...(c.hostBuild !== undefined ? { hostBuild: c.hostBuild } : {}),
      ...(c.lcid !== undefined ? { lcid: c.lcid } : {}),
    },
    profile: { ndr64: c.ndr64 !== false, btfn: c.btfn !== false },
    limits,
  };
  if (c.seed !== undefined) opts.seed = c.seed;
  if (c.control) opts.control = c.control;
  const token = c.control ? readControlToken(c.controlToken) : null;
  if (token) opts.controlToken = token;
  return opts;
}

/** The control token from `--control-token FILE|-` or KMSLAB_CONTROL_TOKEN; null when neither. */
export function readControlToken(file: string | undefined, env = process.env): string | null {
  const where =
    file === undefined ? 'KMSLAB_CONTROL_TOKEN' : `--control-token ${file === '-' ? 'stdin' : file}`;
  let raw: string | undefined;
  try {
    raw =
      file !== undefined
        ? readTextBounded(file, INPUT_LIMITS.token, 'token file')
        : env['KMSLAB_CONTROL_TOKEN'] || undefined;
  } catch (e) {
    throw e instanceof InputFileError ? new UsageError(`--control-token ${e.message}`) : e;
  }
  if (raw === undefined) return null;
  const token = raw.trim();
  if (!/^[\x21-\x7e]{16,}$/.test(token))
    throw new UsageError(`${where}: a token of at least 16 printable characters without spaces`);
  return token;
}

/** The values given on the command line itself (not commander's defaults), by setting key. */
function givenFlags(cmd: Command): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cmd.opts())) {
    if (k !== 'config' && cmd.getOptionValueSource(k) === 'cli') out[k] = v;
  }
  return out;
}

/** Why a listener could not be bound, naming the flag it came from. */
function bindError(e: unknown, c: ServeSettings): Error {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  const reasons: Record<string, string> = {
    EADDRINUSE: 'address already in use',
    EACCES: 'permission denied (ports below 1024 need privileges)',
    EADDRNOTAVAIL: 'not an address of this machine',
  };
  const reason = err.code ? reasons[err.code] : undefined;
  if (!reason) return err;
  const same = (a: ListenAddress | undefined) => a && a.port === err.port;
  const flag = same(c.control) ? '--control' : same(c.dns) ? '--dns' : '--listen';
  const where = err.address !== undefined ? formatHostPort({ host: err.address, port: err.port ?? 0 }) : '';
  return new UsageError(`${flag}: cannot listen on ${where}: ${reason}; nothing was started`);
}

export function registerServe(program: Command, onStarted?: (rt: HostRuntime) => void): void {
  const cmd = program
    .command('serve')
    .description('run a KMS host (TCP 1688) with real CMID counting, 30-day decay and a persistent store');
  for (const [key, [flag, help]] of Object.entries(SERVE_FLAGS) as [ServeKey, readonly [string, string]][]) {
    if (REPEATABLE.has(key)) cmd.option(flag, help, collect);
    else cmd.option(flag, help);
    if (key === 'pretty')
      cmd.option('--config <file>', 'JSON (or YAML) file whose keys are these flags in camelCase');
  }
  cmd.action(async (_o: unknown, self: Command) => {
    await serveAction(self, onStarted);
  });
}

async function serveAction(cmd: Command, onStarted?: (rt: HostRuntime) => void): Promise<void> {
  const configPath = cmd.opts()['config'] as string | undefined;
  const flags = givenFlags(cmd);
  parseServeSettings(flags); // each source is checked alone first, so a message names its flag or key
  const file = configPath ? await readSettingsFile(configPath, '--config') : {};
  if (configPath) parseServeSettings(file, { kind: 'file', path: configPath });
  const scenarioPath = (flags['scenario'] ?? file['scenario']) as string | undefined;
  const scenario = scenarioPath
    ? await (await import('../harness/scenario.js')).loadScenario(scenarioPath)
    : null;
  const merged = { ...file, ...(scenario ? scenarioServeConfig(scenario) : {}), ...flags } as ServeConfig;
  const c = parseServeSettings(merged);
  const opts = buildRuntimeOptions(merged);
  if (typeof opts.store === 'string' && opts.store !== 'memory') prepareParentDir(opts.store, '--store');
  const logger = await (await import('./logger.js')).createLogger(
    c.logLevel ?? 'info',
    c.pretty ?? (flags['pretty'] === undefined && process.stdout.isTTY === true),
  );
  opts.logger = logger;
  const { startHostRuntime } = await import('../server/runtime.js');
  let lab: Awaited<ReturnType<typeof startServeLab>> | null = null;
  let rt: HostRuntime;
  try {
    lab = scenario || c.record ? await startServeLab(opts, { scenario, record: c.record }) : null;
    rt = lab ? lab.runtime : await startHostRuntime(opts);
  } catch (e) {
    throw storeOrBindError(e, c);
  }
  const closeHost = () => (lab ? lab.close() : rt.close());
  let dns: DnsResponder | null = null;
  if (c.dns && c.domain) {
    try {
      const { startDnsResponder, targetsForListen } = await import('../server/dns.js');
      dns = await startDnsResponder({
        listen: c.dns,
        domain: c.domain,
        targets: targetsForListen(rt.addresses, c.dnsTarget ?? `kmslab.${c.domain}`),
        ...(c.dnsTtl !== undefined ? { ttl: c.dnsTtl } : {}),
        logger,
      });
    } catch (e) {
      await closeHost();
      throw e instanceof RangeError ? new UsageError(`--domain: ${e.message}`) : bindError(e, c);
    }
  }
  // slmgr /dlv "DNS publishing enabled": this host answers for its _vlmcs._tcp SRV record.
  if (dns) rt.service.report.dnsPublishing = true;
  // Before the start line: whoever reads it may signal at once.
  stopOnSignals(async (why) => {
    logger.info(
      { signal: why },
      'shutting down: no new connections, finishing in-flight calls, closing the store',
    );
    await dns?.close();
    await closeHost();
    logger.flush?.();
  });
  const where = rt.addresses.map(formatHostPort).join(', ');
  const loopbackOnly = rt.addresses.every((a) => isLoopbackAddress(a.host));
  const also = [
    controlPart(rt, opts.controlToken !== undefined),
    dns ? `DNS on ${formatHostPort(dns.address)}` : '',
  ].filter(Boolean);
  logger.info(
    {
      listen: rt.addresses.map(formatHostPort),
      store: rt.store.path ?? 'memory',
      clock: rt.clock.kind,
      seed: rt.seed,
      identity: rt.service.identitySource,
      control: rt.control ? formatHostPort(rt.control.address) : null,
      dns: dns ? formatHostPort(dns.address) : null,
      epids: rt.service.state.identity.epids,
      ...(scenario ? { scenario: scenario.name, faults: lab?.getFaults().length ?? 0 } : {}),
      ...(c.record ? { record: c.record } : {}),
    },
    `kmslab KMS host (a lab emulator) listening on ${where} (KMS${loopbackOnly ? ', loopback only; use --listen 0.0.0.0:1688 to serve other machines' : ', reachable from other machines'})${also.length ? `, ${also.join(', ')}` : ''}; identity from the ${rt.service.identitySource === 'store' ? 'store' : `seed ${rt.seed}`}`,
  );
  onStarted?.(rt);
}

/** The start line's part about the control listener: where, what it serves, how it is guarded. */
function controlPart(rt: HostRuntime, token: boolean): string {
  if (!rt.control) return '';
  const a = rt.control.address;
  const reach = isLoopbackAddress(a.host) ? 'loopback only' : 'reachable from other machines';
  const guard = token ? 'every request needs the bearer token' : 'no token';
  return `control API on ${formatHostPort(a)} (dashboard and /metrics; ${reach}; ${guard})`;
}

function storeOrBindError(e: unknown, c: ServeSettings): Error {
  const err = e as Error & { code?: unknown };
  const m = (err.message ?? '').split('\n')[0]!;
  const store = c.store ?? DEFAULT_STORE_PATH;
  if (
    err.name === 'StoreDamagedError' ||
    String(err.code).startsWith('SQLITE_') ||
    /unable to open database|not a database|EISDIR|ENOTDIR|EACCES: permission denied, open/.test(m)
  )
    // The store's own errors name the file already (src/store/integrity.ts).
    return new UsageError(m.includes(path.resolve(store)) ? `--store: ${m}` : `--store ${store}: ${m}`);
  return bindError(e, c);
}

/**
 * SIGINT, SIGTERM, or the parent process going away (npm or npx killed, or a supervisor's shell that
 * does not pass signals on: the host is re-parented) all stop the host the same way, once. The exit
 * is then forced after 5 s in case something still holds the event loop.
 */
function stopOnSignals(stop: (why: string) => Promise<void>): void {
  let stopping = false;
  const parent = process.ppid;
  const run = (why: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(watch);
    void stop(why).then(
      () => {
        process.exitCode = 0;
        setTimeout(() => process.exit(0), 5000).unref();
      },
      (e: unknown) => {
        process.stderr.write(`kmslab: while stopping: ${(e as Error).message}\n`);
        process.exit(3);
      },
    );
  };
  const watch = setInterval(() => {
    if (process.ppid !== parent) run('parent exited');
  }, 500);
  watch.unref();
  process.once('SIGINT', () => run('SIGINT'));
  process.once('SIGTERM', () => run('SIGTERM'));
  process.once('SIGHUP', () => run('SIGHUP'));
}
