import type { Command } from 'commander';
import { INPUT_LIMITS, readTextBounded } from '../bounded-read.js';
import { DEFAULT_STORE_PATH } from '../defaults.js';
import { parseDuration } from '../host/clock.js';
import { parseHwid } from '../host/identity.js';
import { GENUINE_MAX_SKEW_MS, type HostPolicy } from '../host/policy.js';
import type { DnsResponder } from '../server/dns.js';
import type { HostRuntime, HostRuntimeOptions } from '../server/runtime.js';
import {
  formatHostPort,
  isLoopback,
  parseHostPort,
  parseIntStrict,
  parseMinutes,
  readConfigFile,
} from './options.js';
import { scenarioServeConfig, startServeLab } from './scenario.js';

/*
 * This module only defines the command (main.ts loads it for every command and for --help): the host
 * (server/runtime.js) and pino load when serve runs, and then only what the flags ask for: the
 * scenario loader (yaml) with --scenario, the DNS responder (dns-packet) with --dns, the pretty
 * printer with --pretty, and, in server/runtime.ts, the control API with its metrics (prom-client)
 * with --control and better-sqlite3 for a file store.
 */

/** `kmslab serve`: flags and config-file keys are the same (camelCase of the flag). */
export interface ServeConfig {
  dns?: string;
  domain?: string;
  dnsTarget?: string;
  dnsTtl?: string | number;
  listen?: string[];
  store?: string;
  durability?: 'normal' | 'full';
  historyLimit?: string | number;
  historyDays?: string | number;
  moveDamagedStore?: boolean;
  /** File holding the control API's bearer token, or `-` for stdin (also KMSLAB_CONTROL_TOKEN). */
  controlToken?: string;
  controlHostAllow?: string[];
  clock?: 'system' | 'manual';
  seed?: string | number;
  control?: string;
  logLevel?: string;
  pretty?: boolean;
  epid?: string[];
  hwid?: string;
  hostBuild?: number | string;
  lcid?: number | string;
  refuseUnknown?: boolean;
  refuseRetail?: boolean;
  refuseMismatch?: boolean;
  maxClockSkew?: string | boolean;
  lenient?: boolean;
  activationInterval?: string | number;
  renewalInterval?: string | number;
  idleTimeout?: string | number;
  maxConnections?: string | number;
  maxPduSize?: string | number;
  maxCallSize?: string | number;
  maxConnectionLifetime?: string | number;
  maxUnsentBytes?: string | number;
  maxRequestsPerConnection?: string | number;
  ndr64?: boolean;
  btfn?: boolean;
  /** Scenario file whose host settings and initial fault rules apply (flags win over its settings). */
  scenario?: string;
  /** NDJSON transcript of every PDU (for kmslab replay). */
  record?: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function buildRuntimeOptions(c: ServeConfig): HostRuntimeOptions {
  const policy: Partial<HostPolicy> = {};
  if (c.refuseUnknown) policy.refuseUnknown = true;
  if (c.refuseRetail) policy.refuseRetail = true;
  if (c.refuseMismatch) policy.refuseMismatch = true;
  if (c.lenient) policy.lenient = true;
  if (c.maxClockSkew !== undefined && c.maxClockSkew !== false) {
    policy.maxClockSkewMs = c.maxClockSkew === true ? GENUINE_MAX_SKEW_MS : parseDuration(c.maxClockSkew);
  }
  if (c.activationInterval !== undefined) policy.activationInterval = parseMinutes(c.activationInterval);
  if (c.renewalInterval !== undefined) policy.renewalInterval = parseMinutes(c.renewalInterval);
  const epids: Record<string, string> = {};
  for (const e of c.epid ?? []) {
    const i = e.indexOf('=');
    if (i < 1) throw new RangeError(`--epid wants GROUP=EPID (e.g. Windows=03612-00206-...), got "${e}"`);
    epids[e.slice(0, i)] = e.slice(i + 1);
  }
  const opts: HostRuntimeOptions = {
    listen: (c.listen && c.listen.length > 0 ? c.listen : ['127.0.0.1:1688']).map((l) => parseHostPort(l)),
    store: c.store === undefined ? DEFAULT_STORE_PATH : c.store,
    durability: c.durability ?? 'normal',
    ...(c.historyLimit !== undefined
      ? { historyLimit: parseIntStrict(c.historyLimit, 'historyLimit', 1) }
      : {}),
    ...(c.historyDays !== undefined ? { historyDays: parseIntStrict(c.historyDays, 'historyDays', 1) } : {}),
    ...(c.moveDamagedStore ? { moveDamagedStore: true } : {}),
    ...(c.controlHostAllow?.length ? { controlHostAllow: c.controlHostAllow } : {}),
    clock: c.clock ?? 'system',
    policy,
    identity: {
      ...(Object.keys(epids).length > 0 ? { epids } : {}),
      ...(c.hwid ? { hwid: parseHwid(c.hwid) } : {}),
      ...(c.hostBuild !== undefined ? { hostBuild: parseIntStrict(c.hostBuild, 'hostBuild', 1) } : {}),
      ...(c.lcid !== undefined ? { lcid: parseIntStrict(c.lcid, 'lcid', 1) } : {}),
    },
    profile: { ndr64: c.ndr64 !== false, btfn: c.btfn !== false },
    limits: {
      ...(c.idleTimeout !== undefined ? { idleTimeoutMs: parseDuration(c.idleTimeout) } : {}),
      ...(c.maxConnections !== undefined
        ? { maxConnections: parseIntStrict(c.maxConnections, 'maxConnections', 1) }
        : {}),
      ...(c.maxPduSize !== undefined ? { maxPduSize: parseIntStrict(c.maxPduSize, 'maxPduSize', 16) } : {}),
      ...(c.maxCallSize !== undefined
        ? { maxCallSize: parseIntStrict(c.maxCallSize, 'maxCallSize', 16) }
        : {}),
      ...(c.maxConnectionLifetime !== undefined
        ? { maxConnectionLifetimeMs: parseDuration(c.maxConnectionLifetime) }
        : {}),
      ...(c.maxUnsentBytes !== undefined
        ? { maxUnsentBytes: parseIntStrict(c.maxUnsentBytes, 'maxUnsentBytes', 1024) }
        : {}),
      ...(c.maxRequestsPerConnection !== undefined
        ? {
            maxRequestsPerConnection: parseIntStrict(
              c.maxRequestsPerConnection,
              'maxRequestsPerConnection',
              1,
            ),
          }
        : {}),
    },
  };
  if (c.seed !== undefined) opts.seed = c.seed;
  if (c.control) opts.control = parseHostPort(c.control, 8688);
  const token = readControlToken(c.controlToken);
  if (token) opts.controlToken = token;
  return opts;
}

export function registerServe(program: Command, onStarted?: (rt: HostRuntime) => void): void {
  program
    .command('serve')
    .description('run a KMS host (TCP 1688) with real CMID counting, 30-day decay and a persistent store')
    .option(
      '--listen <host:port>',
      'address to listen on; repeat for more (default 127.0.0.1:1688, loopback only)',
      collect,
    )
    .option('--store <path|memory>', `SQLite store file, or "memory" (default ${DEFAULT_STORE_PATH})`)
    .option(
      '--durability <normal|full>',
      'SQLite synchronous mode: normal survives process crashes, full also power loss',
    )
    .option('--history-limit <n>', 'history rows kept, the newest (default 1000000; memory store 10000)')
    .option('--history-days <n>', 'SQLite store: prune history rows older than this, host clock (default 90)')
    .option('--move-damaged-store', 'move a damaged store file aside (never deleted) and start an empty one')
    .option('--clock <system|manual>', 'time source; manual moves only through the control API')
    .option('--seed <n>', 'seed for ePIDs, HwId and random values (deterministic runs)')
    .option('--control <host:port>', 'serve the HTTP control API here (loopback by default)')
    .option(
      '--control-token <file|->',
      'require this bearer token on the control API (or KMSLAB_CONTROL_TOKEN)',
    )
    .option(
      '--control-host-allow <name>',
      'a Host name the control API answers (a proxy); repeatable',
      collect,
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
    .option('--pretty', 'human-readable logs instead of JSON lines')
    .option('--config <file>', 'JSON (or YAML) file whose keys are these flags in camelCase')
    .option(
      '--epid <group=epid>',
      'set the ePID of a CSVLK group (Windows, Office2010, Office2013, Office2016, Office2019, WinChinaGov)',
      collect,
    )
    .option('--hwid <hex16>', 'host hardware id sent in V6 responses (16 hex digits)')
    .option('--host-build <n>', 'host OS build used in generated ePIDs (default 17763)')
    .option('--lcid <n>', 'host language id used in generated ePIDs (default 1033)')
    .option('--refuse-unknown', 'answer 0xC004F042 to unknown KMS ids and application ids')
    .option('--refuse-retail', 'answer 0xC004F042 to retail and preview product groups')
    .option('--refuse-mismatch', 'answer 0xC004F042 when the application id does not match the KMS id')
    .option(
      '--max-clock-skew [duration]',
      'answer 0xC004F06C when the client clock is off by more (4h if no value)',
    )
    .option('--lenient', 'accept a bad V4 MAC or V5/V6 padding instead of answering 0x8007000D')
    .option('--activation-interval <duration>', 'VLActivationInterval sent to clients (default 120m)')
    .option('--renewal-interval <duration>', 'VLRenewalInterval sent to clients (default 7d)')
    .option('--idle-timeout <duration>', 'close connections idle this long (default 30s)')
    .option('--max-connections <n>', 'concurrent connections; more are refused (default 1024)')
    .option('--max-pdu-size <bytes>', 'largest PDU accepted (default 5840)')
    .option('--max-call-size <bytes>', 'largest reassembled request stub (default 65536)')
    .option('--max-connection-lifetime <duration>', 'close any connection older than this (default 10m)')
    .option(
      '--max-unsent-bytes <bytes>',
      'drop a client that does not read once this much is queued (default 262144)',
    )
    .option(
      '--max-requests-per-connection <n>',
      'close a connection after this many requests (default 1000000)',
    )
    .option('--no-ndr64', 'act as a Vista/7-era host that does not use NDR64')
    .option(
      '--dns <host:port>',
      'answer DNS (UDP and TCP) here: _vlmcs._tcp.DOMAIN SRV and the host name (needs --domain)',
    )
    .option('--domain <domain>', 'the lab DNS domain served with --dns (e.g. lab.test)')
    .option('--dns-target <name>', 'host name the SRV record points at (default kmslab.DOMAIN)')
    .option('--dns-ttl <seconds>', 'TTL of the DNS records (default 600)')
    .option('--no-btfn', 'refuse bind-time feature negotiation')
    .option(
      '--scenario <file>',
      "apply a scenario file's host settings and fault rules (its steps run with `kmslab scenario run`)",
    )
    .option('--record <file>', 'write an NDJSON transcript of every PDU (for `kmslab replay`)')
    .action(async (flags: ServeConfig & { config?: string }) => {
      const [{ default: pino }, { startHostRuntime }] = await Promise.all([
        import('pino'),
        import('../server/runtime.js'),
      ]);
      const file = flags.config ? await readConfigFile(flags.config) : {};
      const scenarioPath = flags.scenario ?? (file as ServeConfig).scenario;
      const scenario = scenarioPath
        ? await (await import('../harness/scenario.js')).loadScenario(scenarioPath)
        : null;
      const c: ServeConfig = {
        ...(file as ServeConfig),
        ...(scenario ? scenarioServeConfig(scenario) : {}),
        ...stripUndefined(flags),
      };
      const level = c.logLevel ?? 'info';
      const logger =
        c.pretty || (flags.pretty === undefined && process.stderr.isTTY && !file['pretty'])
          ? pino({ level }, (await import('./pretty.js')).prettyStream())
          : pino({ level });
      const opts = buildRuntimeOptions(c);
      opts.logger = logger;
      const lab = scenario || c.record ? await startServeLab(opts, { scenario, record: c.record }) : null;
      const rt = lab ? lab.runtime : await startHostRuntime(opts);
      let dns: DnsResponder | null = null;
      if (c.dns) {
        try {
          if (!c.domain) throw new RangeError('--dns needs --domain (the lab DNS domain, e.g. lab.test)');
          const { startDnsResponder, targetsForListen } = await import('../server/dns.js');
          dns = await startDnsResponder({
            listen: parseHostPort(c.dns, 53),
            domain: c.domain,
            targets: targetsForListen(rt.addresses, c.dnsTarget ?? `kmslab.${c.domain}`),
            ...(c.dnsTtl !== undefined ? { ttl: parseIntStrict(c.dnsTtl, 'dnsTtl', 0) } : {}),
            logger,
          });
        } catch (e) {
          await (lab ? lab.close() : rt.close());
          throw e;
        }
      }
      const where = rt.addresses.map(formatHostPort).join(', ');
      const loopbackOnly = rt.addresses.every((a) => isLoopback(a.host));
      logger.info(
        {
          listen: rt.addresses.map(formatHostPort),
          store: rt.store.path ?? 'memory',
          clock: rt.clock.kind,
          seed: rt.seed,
          control: rt.control ? formatHostPort(rt.control.address) : null,
          dns: dns ? formatHostPort(dns.address) : null,
          epids: rt.service.state.identity.epids,
          ...(scenario ? { scenario: scenario.name, faults: lab?.getFaults().length ?? 0 } : {}),
          ...(c.record ? { record: c.record } : {}),
        },
        `kmslab KMS host (a lab emulator): KMS on ${where}${loopbackOnly ? ' (loopback only; use --listen 0.0.0.0:1688 to serve other machines)' : ''}${controlLine(rt, Boolean(opts.controlToken))}`,
      );
      onStarted?.(rt);
      let stopping = false;
      const stop = async (sig: string) => {
        if (stopping) return;
        stopping = true;
        logger.info(
          { signal: sig },
          'shutting down: no new connections, finishing in-flight calls, closing the store',
        );
        await dns?.close();
        await (lab ? lab.close() : rt.close());
        logger.flush?.();
        process.exitCode = 0;
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
    });
}

/** The start line's part about the control listener: where, what it serves, how it is guarded. */
function controlLine(rt: HostRuntime, token: boolean): string {
  if (!rt.control) return '; no control API';
  const at = `http://${formatHostPort(rt.control.address)}/`;
  const guard = token
    ? 'every request needs the bearer token'
    : 'loopback only, no token, mutations need Content-Type: application/json';
  return `; control API, dashboard and /metrics on ${at} (${guard})`;
}

/** The control token from `--control-token FILE|-` or KMSLAB_CONTROL_TOKEN; null when neither. */
export function readControlToken(file: string | undefined, env = process.env): string | null {
  const where = file === undefined ? 'KMSLAB_CONTROL_TOKEN' : file === '-' ? 'stdin' : file;
  const raw =
    file !== undefined
      ? readTextBounded(file, INPUT_LIMITS.token, 'token file')
      : env['KMSLAB_CONTROL_TOKEN'] || undefined;
  if (raw === undefined) return null;
  const token = raw.trim();
  if (!/^[\x21-\x7e]{16,}$/.test(token))
    throw new RangeError(`control token from ${where}: at least 16 printable characters, no spaces`);
  return token;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(o).filter(([k, v]) => v !== undefined && k !== 'config'),
  ) as Partial<T>;
}
