import net from 'node:net';
import os from 'node:os';
import { checkDnsName, DEFAULT_DNS_TTL, vlmcsSrvName } from '../server/dns.js';

/**
 * `kmslab dns-record`: the `_vlmcs._tcp` SRV record a lab admin publishes so Windows clients find the
 * KMS host by DNS (spec a.1), as a zone-file line, an `nsupdate` script, a `dnscmd` line and a
 * PowerShell line, ready to paste. The command and its flags are defined in dns-record.ts, which
 * loads this module only when the command runs.
 */
export interface DnsRecordOptions {
  domain: string;
  /** Host name of the KMS host (default: this machine's name, under the domain if it has no dot). */
  host?: string;
  port?: number;
  priority?: number;
  weight?: number;
  ttl?: number;
  /** Addresses of the host: adds its A/AAAA records too. */
  addresses?: string[];
  /** DNS server for `nsupdate` (`server` line) and `dnscmd` (server argument). */
  dnsServer?: string;
}

type DnsRecordFormat = 'all' | 'zone' | 'nsupdate' | 'dnscmd' | 'powershell';

export interface DnsRecord {
  domain: string;
  name: string;
  host: string;
  port: number;
  priority: number;
  weight: number;
  ttl: number;
  addresses: string[];
  dnsServer: string | null;
}

function intIn(
  v: number | string | undefined,
  fallback: number,
  what: string,
  min: number,
  max: number,
): number {
  if (v === undefined) return fallback;
  const s = String(v).trim();
  const n = /^\d+$/.test(s) ? Number(s) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new RangeError(`--${what} must be an integer in ${min}..${max}, got "${v}"`);
  return n;
}

export function resolveDnsRecord(o: DnsRecordOptions): DnsRecord {
  const domain = checkDnsName(o.domain, '--domain');
  const rawHost = o.host ?? os.hostname();
  if (net.isIP(rawHost) !== 0)
    throw new RangeError(`--host "${rawHost}" is an address: an SRV record points at a host name`);
  const host = checkDnsName(rawHost.includes('.') ? rawHost : `${rawHost}.${domain}`, '--host');
  const addresses = o.addresses ?? [];
  for (const a of addresses)
    if (net.isIP(a) === 0) throw new RangeError(`--address "${a}" is not an IPv4 or IPv6 address`);
  return {
    domain,
    name: vlmcsSrvName(domain),
    host,
    port: intIn(o.port, 1688, 'port', 1, 65535),
    priority: intIn(o.priority, 0, 'priority', 0, 65535),
    weight: intIn(o.weight, 0, 'weight', 0, 65535),
    ttl: intIn(o.ttl, DEFAULT_DNS_TTL, 'ttl', 0, 2147483647),
    addresses,
    dnsServer: o.dnsServer?.trim() || null,
  };
}

const fqdn = (n: string) => `${n}.`;

/** `HH:MM:SS` or `D.HH:MM:SS` for PowerShell's -TimeToLive. */
function timeSpan(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const hms = [h, m, s].map((x) => String(x).padStart(2, '0')).join(':');
  return d > 0 ? `${d}.${hms}` : hms;
}

/** Owner name relative to the zone (the domain), as dnscmd and PowerShell want it; "@" for the apex. */
function relative(name: string, domain: string): string | null {
  if (name === domain) return '@';
  return name.endsWith(`.${domain}`) ? name.slice(0, -domain.length - 1) : null;
}

function zoneFileLines(r: DnsRecord): string[] {
  const lines = [`${fqdn(r.name)} ${r.ttl} IN SRV ${r.priority} ${r.weight} ${r.port} ${fqdn(r.host)}`];
  for (const a of r.addresses)
    lines.push(`${fqdn(r.host)} ${r.ttl} IN ${net.isIP(a) === 6 ? 'AAAA' : 'A'} ${a}`);
  return lines;
}

function nsupdateScript(r: DnsRecord): string[] {
  const lines: string[] = [];
  if (r.dnsServer) lines.push(`server ${r.dnsServer}`);
  lines.push(`zone ${fqdn(r.domain)}`);
  // Replace this host's record only: other KMS hosts of the domain keep theirs.
  lines.push(`update delete ${fqdn(r.name)} SRV ${r.priority} ${r.weight} ${r.port} ${fqdn(r.host)}`);
  lines.push(
    `update add ${fqdn(r.name)} ${r.ttl} IN SRV ${r.priority} ${r.weight} ${r.port} ${fqdn(r.host)}`,
  );
  for (const a of r.addresses)
    lines.push(`update add ${fqdn(r.host)} ${r.ttl} IN ${net.isIP(a) === 6 ? 'AAAA' : 'A'} ${a}`);
  lines.push('send');
  return lines;
}

function dnscmdLines(r: DnsRecord): string[] {
  const server = r.dnsServer ? `${r.dnsServer} ` : '';
  const lines = [
    `dnscmd ${server}/RecordAdd ${r.domain} ${relative(r.name, r.domain)} ${r.ttl} SRV ${r.priority} ${r.weight} ${r.port} ${r.host}`,
  ];
  const node = relative(r.host, r.domain);
  for (const a of r.addresses) {
    if (node)
      lines.push(
        `dnscmd ${server}/RecordAdd ${r.domain} ${node} ${r.ttl} ${net.isIP(a) === 6 ? 'AAAA' : 'A'} ${a}`,
      );
  }
  return lines;
}

function powershellLines(r: DnsRecord): string[] {
  const server = r.dnsServer ? ` -ComputerName ${r.dnsServer}` : '';
  const ttl = timeSpan(r.ttl);
  const lines = [
    `Add-DnsServerResourceRecord${server} -ZoneName ${r.domain} -Srv -Name ${relative(r.name, r.domain)} -DomainName ${r.host} -Priority ${r.priority} -Weight ${r.weight} -Port ${r.port} -TimeToLive ${ttl}`,
  ];
  const node = relative(r.host, r.domain);
  for (const a of r.addresses) {
    if (!node) continue;
    const v6 = net.isIP(a) === 6;
    lines.push(
      `Add-DnsServerResourceRecord${server} -ZoneName ${r.domain} -${v6 ? 'AAAA' : 'A'} -Name ${node} -${v6 ? 'IPv6Address' : 'IPv4Address'} ${a} -TimeToLive ${ttl}`,
    );
  }
  return lines;
}

/** The text `kmslab dns-record` prints. */
function dnsRecordText(r: DnsRecord, format: DnsRecordFormat = 'all'): string {
  switch (format) {
    case 'zone':
      return `${zoneFileLines(r).join('\n')}\n`;
    case 'nsupdate':
      return `${nsupdateScript(r).join('\n')}\n`;
    case 'dnscmd':
      return `${dnscmdLines(r).join('\n')}\n`;
    case 'powershell':
      return `${powershellLines(r).join('\n')}\n`;
    case 'all':
      break;
    default:
      throw new RangeError(
        `--format must be all, zone, nsupdate, dnscmd or powershell, got "${format as string}"`,
      );
  }
  const outside = relative(r.host, r.domain) === null && r.addresses.length > 0;
  return [
    `; KMS host discovery record for ${r.domain}: Windows clients query ${r.name} SRV`,
    `; and try ${r.host}:${r.port} (lower priority first, then by weight).`,
    ...(outside ? [`; ${r.host} is outside ${r.domain}: add its A/AAAA records in its own zone.`] : []),
    '',
    `; 1. BIND zone file of ${r.domain}`,
    ...zoneFileLines(r),
    '',
    `; 2. nsupdate script (save as kms.nsupdate, then: nsupdate -k KEYFILE kms.nsupdate)`,
    ...nsupdateScript(r),
    '',
    '; 3. Windows DNS server, cmd.exe (Administrator)',
    ...dnscmdLines(r),
    '',
    '; 4. Windows DNS server, PowerShell (DnsServer module)',
    ...powershellLines(r),
    '',
  ].join('\n');
}

/** `kmslab dns-record`: flags as parsed by commander. */
export interface DnsRecordFlags {
  domain: string;
  host?: string;
  port: string;
  priority: string;
  weight: string;
  ttl: string;
  address?: string[];
  dnsServer?: string;
  format: string;
}

/** The action of `kmslab dns-record`: validates the flags and writes the records. */
export function dnsRecordCommand(flags: DnsRecordFlags, write: (s: string) => void): void {
  const r = resolveDnsRecord({
    domain: flags.domain,
    ...(flags.host !== undefined ? { host: flags.host } : {}),
    port: intIn(flags.port, 1688, 'port', 1, 65535),
    priority: intIn(flags.priority, 0, 'priority', 0, 65535),
    weight: intIn(flags.weight, 0, 'weight', 0, 65535),
    ttl: intIn(flags.ttl, DEFAULT_DNS_TTL, 'ttl', 0, 2147483647),
    addresses: flags.address ?? [],
    ...(flags.dnsServer !== undefined ? { dnsServer: flags.dnsServer } : {}),
  });
  write(dnsRecordText(r, flags.format as DnsRecordFormat));
}
