/**
 * `kmslab activate`: the client emulator on the command line. Thin: parses options, runs
 * src/client, prints one block (or one JSON line) per request and sets process.exitCode.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  type ActivateOptions,
  type ActivationResult,
  activate,
  DEFAULT_KMS_PORT,
  DEFAULT_TIMEOUT_MS,
  defaultRandom,
  type FailureInfo,
  formatHostPort,
  parseHostPort,
  resolveProduct,
  resultStatus,
} from '../client/client.js';
import type { activateWithDiscovery, DiscoveryOutcome } from '../client/discover.js';
import { formatDuration, MINUTE, parseDuration } from '../host/clock.js';
import { SeededRandom } from '../host/random.js';
import { hresultHex } from '../kms/hresult.js';
import type { KmsVersion } from '../kms/messages.js';
import { isProtocolError } from '../wire/errors.js';
import { parseGuid } from '../wire/guid.js';
import { EXIT } from './errors.js';

/** Exit codes of `activate`: the command line's one scheme (errors.ts), in activate's words. */
const ACTIVATE_EXIT = {
  ACTIVATED: EXIT.OK,
  USAGE: EXIT.USAGE,
  NOT_ACTIVATED: EXIT.REFUSED,
  FAILED: EXIT.FAILED,
} as const;

interface ActivateCliOptions {
  product?: string;
  sku?: string;
  app?: string;
  kmsId?: string;
  protocol?: KmsVersion;
  cmid?: string;
  previousCmid?: string;
  workstation?: string;
  requiredCount?: number;
  licenseStatus?: number;
  vm?: boolean;
  ndr64: boolean;
  btfn: boolean;
  epidCheck: boolean;
  multiplex: boolean;
  requests: number;
  newConnection?: boolean;
  timeout: number;
  json?: boolean;
  discover?: string;
  dnsServer?: string;
  seed?: number;
}

function intParser(name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const t = v.trim();
    if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) {
      throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}.`);
    }
    return Number(t);
  };
}

function guidParser(v: string): string {
  try {
    return parseGuid(v);
  } catch {
    throw new InvalidArgumentError('not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).');
  }
}

function protocolParser(v: string): KmsVersion {
  const t = v.trim();
  if (t !== '4' && t !== '5' && t !== '6') throw new InvalidArgumentError('the KMS protocol is 4, 5 or 6.');
  return Number(t) as KmsVersion;
}

function timeoutParser(v: string): number {
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch {
    throw new InvalidArgumentError('give milliseconds (e.g. 5000) or a duration (e.g. 5s).');
  }
  if (!(ms >= 1 && ms <= 3_600_000)) throw new InvalidArgumentError('the timeout must be 1 ms .. 1 h.');
  return Math.round(ms);
}

function hostPortParser(defaultPort: number): (v: string) => string {
  return (v) => {
    try {
      const hp = parseHostPort(v, defaultPort);
      return formatHostPort(hp.host, hp.port);
    } catch (e) {
      throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
    }
  };
}

const HELP_AFTER = `
Sends KMS activation requests the way a Windows client does (one bind offering NDR32, NDR64 and
bind-time feature negotiation; an alter_context for NDR32 when the host prefers NDR64) and verifies
every answer completely: PDU type, call_id and context echo, NDR stub layout, the V4 MAC / V5 hash /
V6 HMAC, the CMID, time stamp and IV echoes and the ePID. The client then decides like Windows:
activated when the count reaches the required count, otherwise HRESULT 0xC004F038.

Product: --product takes a catalog name ("Windows 10 Enterprise") or SKU GUID; --sku a raw SKU GUID
(an unknown SKU also needs --app and --kms-id). --app / --kms-id override the product's ids. Without
--product or --sku, Windows 10/11 Enterprise is used. --protocol and --required-count default to what
genuine clients of the product's KMS id send.

HOST defaults to port ${DEFAULT_KMS_PORT}; write an IPv6 address as [::1]:1688. --discover DOMAIN
queries _vlmcs._tcp.DOMAIN (SRV) at --dns-server (default: first nameserver of /etc/resolv.conf)
and tries the targets in priority / weight order, every address of a target (A and AAAA) before
the next target, until one answers. It moves on only when the connection or the bind fails
(refused, timeout, closed, bind rejected); an error HRESULT or a failed check is the result.

What the exit codes mean for activate:
  0  every request got a verified answer and the client is activated
  2  every answer verified, but at least one was not an activation: the host answered an error
     HRESULT (e.g. 0xC004F042) or the count was insufficient (0xC004F038, decided by the client)
  3  at least one request failed: transport (refused, timeout, closed), RPC (bind refused, fault)
     or verification (a check on the answer failed); also when discovery found no host that answers
  1  usage error (bad or conflicting options)

--json prints one JSON object per line per request: host, port, protocol, epid, hwid, count,
requiredCount, activationInterval, renewalInterval, activated, hresult ("0xC004F038"), hresultText,
cmid, ndr, callId, and on failure error {kind, code, message, field?, ncaStatus?, ncaName?}.
With --discover every line also has discovery {domain, srvName, dnsServer, records [{priority,
weight, port, target, addresses}] in the order tried, attempts [{target, host, port, priority,
weight, error?}] one per address tried (no error: it answered), host, port (null: none answered)}.
`;

/** Adds `activate [HOST[:PORT]]` to `program`. */
export function registerActivate(program: Command): void {
  program
    .command('activate')
    .description('act as a KMS client: activate against a KMS host and verify its answers')
    .argument('[HOST[:PORT]]', `KMS host (default port ${DEFAULT_KMS_PORT}; IPv6 as [::1]:1688)`)
    .addOption(new Option('--product <name>', 'product name or SKU GUID from the catalog').conflicts('sku'))
    .addOption(new Option('--sku <guid>', 'raw SKU (ActivationId)').argParser(guidParser))
    .addOption(new Option('--app <guid>', 'raw ApplicationId').argParser(guidParser))
    .addOption(new Option('--kms-id <guid>', 'raw KMS counted id').argParser(guidParser))
    .addOption(new Option('--protocol <4|5|6>', 'KMS protocol version').argParser(protocolParser))
    .addOption(new Option('--cmid <guid>', 'client machine id (default: random)').argParser(guidParser))
    .addOption(new Option('--previous-cmid <guid>', 'previous client machine id').argParser(guidParser))
    .option('--workstation <name>', 'workstation name sent (default: this host name)')
    .addOption(
      new Option('--required-count <n>', 'N_Policy: count this client needs').argParser(
        intParser('--required-count', 0, 0xffffffff),
      ),
    )
    .addOption(
      new Option('--license-status <n>', 'license status sent (default 2, OOB grace)').argParser(
        intParser('--license-status', 0, 0xffffffff),
      ),
    )
    .option('--vm', 'claim to be a virtual machine')
    .option('--no-ndr64', 'offer NDR32 only')
    .option('--no-btfn', 'do not offer bind-time feature negotiation')
    .option('--no-epid-check', 'accept an ePID of any form (default: its format and bounds are checked)')
    .option('--no-multiplex', 'bind without PFC_CONC_MPX (flags 0x03)')
    .addOption(
      new Option('--requests <n>', 'requests to send')
        .argParser(intParser('--requests', 1, 100_000))
        .default(1),
    )
    .option('--new-connection', 'a new TCP connection (and bind) for every request')
    .addOption(
      new Option('--timeout <ms>', 'timeout per operation (connect, each answer)')
        .argParser(timeoutParser)
        .default(DEFAULT_TIMEOUT_MS),
    )
    .option('--json', 'one JSON object per line per request')
    .option('--discover <domain>', 'find the host by DNS SRV _vlmcs._tcp.DOMAIN')
    .addOption(
      new Option('--dns-server <host:port>', 'DNS server for --discover').argParser(hostPortParser(53)),
    )
    .addOption(
      new Option('--seed <n>', 'seed the random source (CMID, IVs, DNS) for a reproducible run').argParser(
        intParser('--seed', 0, 0xffffffff),
      ),
    )
    .addHelpText('after', HELP_AFTER)
    .action(async (hostArg: string | undefined, o: ActivateCliOptions, cmd: Command) => {
      await runActivate(hostArg, o, cmd);
    });
}

async function runActivate(hostArg: string | undefined, o: ActivateCliOptions, cmd: Command): Promise<void> {
  const output = cmd.configureOutput();
  const write = (s: string): void => {
    if (output.writeOut) output.writeOut(s);
    else process.stdout.write(s);
  };
  const usage = (msg: string): never =>
    cmd.error(`error: ${msg}`, { exitCode: ACTIVATE_EXIT.USAGE, code: 'kmslab.usage' });

  if (hostArg !== undefined && o.discover !== undefined)
    usage('give either HOST or --discover DOMAIN, not both');
  if (hostArg === undefined && o.discover === undefined) usage('give a HOST[:PORT] or --discover DOMAIN');
  if (o.dnsServer !== undefined && o.discover === undefined) usage('--dns-server only goes with --discover');
  if (o.workstation !== undefined && o.workstation.length > 63) usage('--workstation: at most 63 characters');

  const random = o.seed !== undefined ? new SeededRandom(o.seed) : defaultRandom();
  const base: Omit<ActivateOptions, 'host'> = {
    ndr64: o.ndr64,
    btfn: o.btfn,
    checkEpid: o.epidCheck,
    multiplex: o.multiplex,
    requests: o.requests,
    newConnection: o.newConnection ?? false,
    timeoutMs: o.timeout,
    vm: o.vm ?? false,
    random,
  };
  for (const k of [
    'product',
    'sku',
    'app',
    'kmsId',
    'protocol',
    'cmid',
    'previousCmid',
    'workstation',
    'requiredCount',
    'licenseStatus',
  ] as const) {
    if (o[k] !== undefined) (base as Record<string, unknown>)[k] = o[k];
  }

  let product: ReturnType<typeof resolveProduct>;
  try {
    product = resolveProduct(base);
  } catch (e) {
    return usage(isProtocolError(e) ? e.message : String(e));
  }

  let results: ActivationResult[];
  let discovery: DiscoveryOutcome | null = null;
  try {
    if (o.discover !== undefined) {
      const d: Parameters<typeof activateWithDiscovery>[0] = { ...base, domain: o.discover };
      if (o.dnsServer !== undefined) d.dnsServer = o.dnsServer;
      // DNS discovery (and dns-packet) is loaded only for --discover.
      const discover = await import('../client/discover.js');
      discovery = await discover.activateWithDiscovery(d);
      results = discovery.results;
    } else {
      const hp = parseHostPort(hostArg!, DEFAULT_KMS_PORT);
      results = await activate({ ...base, host: hp.host, port: hp.port });
    }
  } catch (e) {
    if (isProtocolError(e) && e.code === 'BAD_VALUE') return usage(e.message);
    throw e;
  }

  if (o.json) {
    const disc = discovery ? jsonDiscovery(discovery) : null;
    for (const r of results) {
      const j = jsonResult(r);
      if (disc) j['discovery'] = disc;
      write(`${JSON.stringify(j)}\n`);
    }
  } else {
    const name = product.name ?? 'unknown SKU';
    write(
      `Product: ${name} (SKU ${product.skuId}, KMS id ${product.kmsId}, app ${product.applicationId}), ` +
        `KMS V${product.protocol}, required count ${product.requiredCount}\n`,
    );
    if (discovery) write(describeDiscovery(discovery));
    results.forEach((r, i) => {
      write(describeResult(r, i, results.length));
    });
  }
  process.exitCode = exitCodeFor(results);
}

/** 0 all activated, 2 an HRESULT (host error or count insufficient), 3 any failure. */
function exitCodeFor(results: readonly ActivationResult[]): number {
  if (results.length === 0 || results.some((r) => resultStatus(r) === 'failed')) return ACTIVATE_EXIT.FAILED;
  if (results.some((r) => resultStatus(r) === 'refused')) return ACTIVATE_EXIT.NOT_ACTIVATED;
  return ACTIVATE_EXIT.ACTIVATED;
}

function jsonResult(r: ActivationResult): Record<string, unknown> {
  const o: Record<string, unknown> = {
    host: r.host,
    port: r.port,
    protocol: r.protocol,
    epid: r.epid,
    hwid: r.hwid,
    count: r.count,
    requiredCount: r.requiredCount,
    activationInterval: r.activationInterval,
    renewalInterval: r.renewalInterval,
    activated: r.activated,
    hresult: hresultHex(r.hresult),
    hresultText: r.hresultText,
    cmid: r.cmid,
    ndr: r.ndr,
    callId: r.callId,
  };
  if (r.hmacSlot !== undefined) o['hmacSlot'] = r.hmacSlot;
  if (r.error) o['error'] = jsonError(r.error);
  return o;
}

function jsonError(e: FailureInfo): Record<string, unknown> {
  return e.ncaStatus !== undefined ? { ...e, ncaStatus: hresultHex(e.ncaStatus) } : { ...e };
}

/**
 * The `discovery` member of each --json line of a --discover run: the DNS server asked, the SRV records
 * in the order tried (`addresses` [] when neither glue nor the DNS server gave any, so the system
 * resolver was asked), every address tried in order (`error` absent on the one that answered) and the
 * address that answered (null when none did).
 */
function jsonDiscovery(d: DiscoveryOutcome): Record<string, unknown> {
  return {
    domain: d.domain,
    srvName: d.srvName,
    dnsServer: d.dnsServer,
    records: d.records.map((r) => ({
      priority: r.priority,
      weight: r.weight,
      port: r.port,
      target: r.target,
      addresses: r.addresses ?? [],
    })),
    attempts: d.attempts.map((a) => {
      const o: Record<string, unknown> = {
        target: a.target,
        host: a.host,
        port: a.port,
        priority: a.priority,
        weight: a.weight,
      };
      if (a.error) o['error'] = jsonError(a.error);
      return o;
    }),
    host: d.host,
    port: d.port,
  };
}

function minutes(m: number | null): string {
  if (m === null) return '-';
  return m === 0 ? '0 minutes' : `${m} minutes (${formatDuration(m * MINUTE)})`;
}

function line(label: string, value: string): string {
  return `  ${`${label}:`.padEnd(21)} ${value}\n`;
}

function describeResult(r: ActivationResult, i: number, n: number): string {
  const where = r.host ? formatHostPort(r.host, r.port) : '(no host)';
  const via = r.ndr ? `, ${r.ndr.toUpperCase()}, call_id ${r.callId}` : '';
  let s = `Request ${i + 1} of ${n}: KMS V${r.protocol} to ${where}${via}\n`;
  s += line('CMID', r.cmid);
  if (r.error) {
    const nca = r.error.ncaName ? ` [${r.error.ncaName}]` : '';
    s += line('Result', `FAILED (${r.error.kind}, ${r.error.code})${nca}: ${r.error.message}`);
    s += line('HRESULT', `${hresultHex(r.hresult)}: ${r.hresultText}`);
    return s;
  }
  if (r.epid !== null) {
    s += line('ePID', r.epid);
    if (r.hwid !== null) s += line('Hardware ID', r.hwid);
    s += line('Count', `${r.count} (required ${r.requiredCount})`);
    s += line('Activation interval', minutes(r.activationInterval));
    s += line('Renewal interval', minutes(r.renewalInterval));
  }
  s += line(
    'Result',
    r.activated ? 'activated' : `not activated, HRESULT ${hresultHex(r.hresult)}: ${r.hresultText}`,
  );
  return s;
}

function describeDiscovery(d: DiscoveryOutcome): string {
  let s = `Discovery: ${d.srvName} -> ${d.records.length} record(s)\n`;
  for (const a of d.attempts) {
    const what = a.error ? `no answer (${a.error.code}: ${a.error.message})` : 'answered';
    s += `  ${a.target} -> ${formatHostPort(a.host, a.port)} (priority ${a.priority}, weight ${a.weight}): ${what}\n`;
  }
  return s;
}
