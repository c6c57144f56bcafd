/**
 * `kmslab dns-record`: the `_vlmcs._tcp` SRV record a lab admin publishes so Windows clients find the
 * KMS host by DNS (spec a.1). This module only defines the command; the records are made by
 * dns-record-run.ts, loaded when the command runs (it needs server/dns.js and with it dns-packet).
 */
import type { Command } from 'commander';
import { DEFAULT_DNS_TTL } from '../defaults.js';
import type { DnsRecordFlags } from './dns-record-run.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerDnsRecord(
  program: Command,
  write: (s: string) => void = (s) => process.stdout.write(s),
): void {
  program
    .command('dns-record')
    .description(
      'print the _vlmcs._tcp SRV record (zone file, nsupdate, dnscmd, PowerShell) that lets clients find a KMS host',
    )
    .requiredOption('--domain <domain>', 'DNS domain the clients are in (e.g. lab.example.com)')
    .option('--host <name>', "the KMS host's DNS name (default: this machine's name under --domain)")
    .option('--port <n>', 'TCP port of the KMS host', '1688')
    .option('--priority <n>', 'SRV priority: lower is tried first', '0')
    .option('--weight <n>', 'SRV weight among hosts of the same priority', '0')
    .option('--ttl <seconds>', 'record TTL in seconds', String(DEFAULT_DNS_TTL))
    .option(
      '--address <ip>',
      "the host's IPv4/IPv6 address: also print its A/AAAA record (repeatable)",
      collect,
    )
    .option(
      '--dns-server <host>',
      'DNS server to update (nsupdate "server" line, dnscmd and PowerShell target)',
    )
    .option('--format <format>', 'all, zone, nsupdate, dnscmd or powershell', 'all')
    .action(async (flags: DnsRecordFlags) => {
      const { dnsRecordCommand } = await import('./dns-record-run.js');
      dnsRecordCommand(flags, write);
    });
}
