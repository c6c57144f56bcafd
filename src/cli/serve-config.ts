/**
 * `kmslab serve`'s settings, declared once: each key is a config-file key (camelCase) and a flag (its
 * kebab-case), with one zod schema that gives both its TypeScript type and its validation, and one line
 * of help. A new flag is one line in SERVE_SETTINGS, one in SERVE_FLAGS (the compiler insists) and its
 * use in buildRuntimeOptions (serve.ts).
 */
import { z } from 'zod';
import { parseHwid } from '../host/identity.js';
import { formatIssues, show, UsageError } from './errors.js';
import { address, bool, duration, durationOrSwitch, integer, list, minutes, oneOf, text } from './values.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const epid = z.string().transform((v, ctx) => {
  const i = v.indexOf('=');
  if (i < 1 || i === v.length - 1) {
    ctx.addIssue({
      code: 'custom',
      message: `GROUP=EPID (e.g. Windows=03612-00206-...), got ${show(v)}`,
      input: v,
    });
    return z.NEVER;
  }
  return [v.slice(0, i), v.slice(i + 1)] as const;
});

const hwid = z.string().transform((v, ctx) => {
  try {
    return parseHwid(v);
  } catch {
    ctx.addIssue({ code: 'custom', message: `16 hex digits (quote it in YAML), got ${show(v)}`, input: v });
    return z.NEVER;
  }
});

/** Every serve setting: the config-file key, and the flag named after it. */
const SERVE_SETTINGS = {
  listen: list(address(1688)),
  store: text('a file path or "memory"'),
  durability: oneOf(['normal', 'full']),
  historyLimit: integer(1),
  historyDays: integer(1),
  moveDamagedStore: bool(),
  clock: oneOf(['system', 'manual']),
  seed: z.union([z.string(), z.number()], { error: 'a string or a number' }),
  control: address(8688),
  controlToken: text('a file path, or - for stdin'),
  controlHostAllow: list(text('a host name such as kms-lab.example')),
  logLevel: oneOf(LOG_LEVELS),
  pretty: bool(),
  epid: list(epid),
  hwid,
  hostBuild: integer(1, 0xffff),
  lcid: integer(1, 0xffff),
  refuseUnknown: bool(),
  refuseRetail: bool(),
  refuseMismatch: bool(),
  maxClockSkew: durationOrSwitch(),
  lenient: bool(),
  activationInterval: minutes(),
  renewalInterval: minutes(),
  idleTimeout: duration(),
  maxConnections: integer(1),
  maxPduSize: integer(16),
  maxCallSize: integer(16),
  maxConnectionLifetime: duration(),
  maxUnsentBytes: integer(1024),
  maxRequestsPerConnection: integer(1),
  maxActivationLogLines: integer(1),
  ndr64: bool(),
  dns: address(53),
  domain: text('a DNS domain such as lab.test'),
  dnsTarget: text('a host name'),
  dnsTtl: integer(0, 0x7fffffff),
  btfn: bool(),
  scenario: text('a file path'),
  record: text('a file path'),
} as const;

export type ServeKey = keyof typeof SERVE_SETTINGS;

/** The flag syntax and help line of each setting (the order here is the order of `serve --help`). */
export const SERVE_FLAGS: Record<ServeKey, readonly [flag: string, help: string]> = {
  listen: [
    '--listen <host:port>',
    'address to listen on; repeat for more (default 127.0.0.1:1688, loopback only)',
  ],
  store: ['--store <path|memory>', 'SQLite store file, or "memory" (default data/kmslab.sqlite)'],
  durability: [
    '--durability <normal|full>',
    'SQLite synchronous mode: normal survives process crashes, full also power loss',
  ],
  historyLimit: [
    '--history-limit <n>',
    'history rows kept, the newest (default 1000000; memory store 10000); pools are never pruned',
  ],
  historyDays: [
    '--history-days <n>',
    'SQLite store: prune history rows older than this many days, host clock (default 90)',
  ],
  moveDamagedStore: [
    '--move-damaged-store',
    'a damaged store file is renamed aside (never deleted) and an empty store started',
  ],
  clock: ['--clock <system|manual>', 'time source; manual moves only through the control API'],
  seed: ['--seed <n>', 'seed for ePIDs, HwId and random values (deterministic runs)'],
  control: [
    '--control <host:port>',
    'serve the HTTP control API and dashboard here (loopback; elsewhere needs --control-token)',
  ],
  controlToken: [
    '--control-token <file|->',
    'every control request needs this bearer token, read from FILE or stdin (or KMSLAB_CONTROL_TOKEN)',
  ],
  controlHostAllow: [
    '--control-host-allow <name>',
    'another Host name the control API answers (e.g. a reverse proxy); repeat for more',
  ],
  logLevel: ['--log-level <level>', 'fatal, error, warn, info (default), debug, trace or silent'],
  pretty: ['--pretty', 'human-readable logs instead of JSON lines (on stdout either way)'],
  epid: [
    '--epid <group=epid>',
    'set the ePID of a CSVLK group (Windows, Office2010, Office2013, Office2016, Office2019, WinChinaGov)',
  ],
  hwid: ['--hwid <hex16>', 'host hardware id sent in V6 responses (16 hex digits)'],
  hostBuild: ['--host-build <n>', 'host OS build used in generated ePIDs (default 17763)'],
  lcid: ['--lcid <n>', 'host language id used in generated ePIDs (default 1033)'],
  refuseUnknown: ['--refuse-unknown', 'answer 0xC004F042 to unknown KMS ids and application ids'],
  refuseRetail: ['--refuse-retail', 'answer 0xC004F042 to retail and preview product groups'],
  refuseMismatch: [
    '--refuse-mismatch',
    'answer 0xC004F042 when the application id does not match the KMS id',
  ],
  maxClockSkew: [
    '--max-clock-skew [duration]',
    'answer 0xC004F06C when the client clock is off by more (4h if no value)',
  ],
  lenient: ['--lenient', 'accept a bad V4 MAC or V5/V6 padding instead of answering 0x8007000D'],
  activationInterval: [
    '--activation-interval <duration>',
    'VLActivationInterval sent to clients (default 120m)',
  ],
  renewalInterval: ['--renewal-interval <duration>', 'VLRenewalInterval sent to clients (default 7d)'],
  idleTimeout: ['--idle-timeout <duration>', 'close connections idle this long (default 30s)'],
  maxConnections: [
    '--max-connections <n>',
    'concurrent connections; at the cap the longest-open one that completed no call is closed for the new one (default 10000)',
  ],
  maxPduSize: ['--max-pdu-size <bytes>', 'largest PDU accepted (default 5840)'],
  maxCallSize: ['--max-call-size <bytes>', 'largest reassembled request stub (default 65536)'],
  maxConnectionLifetime: [
    '--max-connection-lifetime <duration>',
    'close any connection older than this (default 10m)',
  ],
  maxUnsentBytes: [
    '--max-unsent-bytes <bytes>',
    'drop a client that does not read once this much is queued (default 262144)',
  ],
  maxRequestsPerConnection: [
    '--max-requests-per-connection <n>',
    'close a connection after this many requests (default 1000000)',
  ],
  maxActivationLogLines: [
    '--max-activation-log-lines <n>',
    '"activation request" log lines per second, host-wide, at most half for one client; the next line says how many were left out (default 100)',
  ],
  ndr64: ['--no-ndr64', 'act as a Vista/7-era host that does not use NDR64'],
  dns: [
    '--dns <host:port>',
    'answer DNS (UDP and TCP) here: _vlmcs._tcp.DOMAIN SRV and the host name (needs --domain)',
  ],
  domain: ['--domain <domain>', 'the lab DNS domain served with --dns (e.g. lab.test)'],
  dnsTarget: ['--dns-target <name>', 'host name the SRV record points at (default kmslab.DOMAIN)'],
  dnsTtl: ['--dns-ttl <seconds>', 'TTL of the DNS records (default 600)'],
  btfn: ['--no-btfn', 'refuse bind-time feature negotiation'],
  scenario: [
    '--scenario <file>',
    "apply a scenario file's host settings and fault rules (its steps run with `kmslab scenario run`)",
  ],
  record: ['--record <file>', 'write an NDJSON transcript of every PDU (for `kmslab replay`)'],
};

const serveSchema = z.strictObject(SERVE_SETTINGS).partial();

/** What a config file (or a test) may give: the input side of the schema. */
export type ServeConfig = z.input<typeof serveSchema>;
/** The checked, typed settings. */
export type ServeSettings = z.output<typeof serveSchema>;

const KEYS = Object.keys(SERVE_SETTINGS) as ServeKey[];

/** `maxConnections` → `--max-connections` (`ndr64` → `--no-ndr64`: its flag form). */
function flagName(key: string): string {
  const spec = SERVE_FLAGS[key as ServeKey];
  if (spec) return spec[0].split(' ')[0]!;
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Where the settings came from: command-line flags, or a file whose keys are named as written. */
export type SettingsSource = { kind: 'flags' } | { kind: 'file'; path: string };

function labelFor(source: SettingsSource) {
  return (path: readonly PropertyKey[]): string => {
    if (source.kind === 'flags') {
      const [k, ...rest] = path;
      return `${flagName(String(k))}${rest
        .filter((p) => typeof p !== 'number')
        .map((p) => `.${String(p)}`)
        .join('')}`;
    }
    const at = path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    return `${source.path}: ${at.replace(/^\./, '') || '(top level)'}`;
  };
}

/** Checks serve settings; throws one UsageError whose message has one line per problem. */
export function parseServeSettings(
  input: unknown,
  source: SettingsSource = { kind: 'flags' },
): ServeSettings {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new UsageError(`${labelFor(source)([])}: an object of serve settings, got ${show(input)}`);
  }
  const r = serveSchema.safeParse(input, { reportInput: true });
  if (!r.success) {
    const lines = formatIssues(
      r.error.issues,
      labelFor(source),
      () => (source.kind === 'flags' ? KEYS.map(flagName) : KEYS),
      (k) => (source.kind === 'flags' ? k : JSON.stringify(k)),
    );
    throw new UsageError(lines.join('; '));
  }
  const s = r.data;
  checkCombinations(s);
  return s;
}

/** Settings that are fine alone but not together. Names are flags: the merged settings have no one file. */
function checkCombinations(s: ServeSettings): void {
  const at = (a: { host: string; port: number }) => `${a.host}:${a.port}`;
  const seen = new Set<string>();
  for (const l of s.listen ?? []) {
    if (l.port !== 0 && seen.has(at(l))) throw new UsageError(`--listen: ${at(l)} is given twice`);
    seen.add(at(l));
  }
  const listens = s.listen && s.listen.length > 0 ? s.listen : [{ host: '127.0.0.1', port: 1688 }];
  const clash = (a: { host: string; port: number }) =>
    a.port !== 0 && listens.some((l) => l.port === a.port && l.host === a.host);
  if (s.control && clash(s.control))
    throw new UsageError(`--control: ${at(s.control)} is also a --listen address (give it another port)`);
  if (s.dns && clash(s.dns))
    throw new UsageError(`--dns: ${at(s.dns)} is also a --listen address (give it another port)`);
  if (
    s.dns &&
    s.control &&
    s.dns.port !== 0 &&
    s.dns.port === s.control.port &&
    s.dns.host === s.control.host
  )
    throw new UsageError(`--dns: ${at(s.dns)} is also the --control address`);
  if (s.dns && !s.domain) throw new UsageError('--dns needs --domain (the lab DNS domain, e.g. lab.test)');
  for (const k of ['domain', 'dnsTarget', 'dnsTtl'] as const)
    if (s[k] !== undefined && !s.dns) throw new UsageError(`${flagName(k)} only goes with --dns HOST:PORT`);
  for (const k of ['controlToken', 'controlHostAllow'] as const)
    if (s[k] !== undefined && !s.control)
      throw new UsageError(`${flagName(k)} only goes with --control HOST:PORT`);
}
