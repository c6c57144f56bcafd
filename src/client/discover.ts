/**
 * KMS host discovery the way Windows does it: a DNS SRV query for `_vlmcs._tcp.DOMAIN`, targets ordered
 * by priority and then by RFC 2782 weighted random choice, each tried in turn (every address of a
 * target before the next target) until one answers.
 *
 * The DNS query goes over UDP to one given server (falling back to TCP when the answer is truncated).
 * Randomness (query ids, the weighted order) only through the injected Random.
 */
import { createSocket } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIP, connect as netConnect } from 'node:net';
import dnsPacket from 'dns-packet';
import { type Random, randomGuid } from '../host/random.js';
import { ProtocolError } from '../wire/errors.js';
import { parseGuid } from '../wire/guid.js';
import {
  type ActivateOptions,
  type ActivationResult,
  DEFAULT_TIMEOUT_MS,
  defaultRandom,
  type FailureInfo,
  formatHostPort,
  type HostPort,
  KmsClient,
  KmsClientError,
  parseHostPort,
  resolveProduct,
  unansweredResult,
} from './client.js';

const DNS_PORT = 53;

export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  /** Host name as published (no trailing dot). */
  target: string;
  /** Addresses for the target found in the answer's additional section or by A/AAAA queries. */
  addresses?: string[];
}

export interface DnsQueryOptions {
  /** `HOST[:PORT]` or `[V6]:PORT` of the DNS server; default the first nameserver of /etc/resolv.conf. */
  dnsServer?: string;
  timeoutMs?: number;
  random?: Random;
}

/** The first `nameserver` of a resolv.conf, port 53. Throws when there is none. */
export function defaultDnsServer(path = '/etc/resolv.conf'): HostPort {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ProtocolError(
      'BAD_VALUE',
      `cannot read ${path} to find a DNS server (${(e as Error).message})`,
    );
  }
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) {
      // resolv.conf may give a scoped IPv6 address (fe80::1%eth0); keep it as is.
      return { host: m[1]!, port: DNS_PORT };
    }
  }
  throw new ProtocolError('BAD_VALUE', `no nameserver line in ${path}; give a DNS server`);
}

function dnsError(message: string): KmsClientError {
  return new KmsClientError('transport', 'DNS_FAILURE', message);
}

/** The fields of a decoded DNS message this module reads. */
interface DnsAnswer {
  id?: number | undefined;
  flag_tc: boolean;
  rcode?: string;
  questions?: { name: string; type: string }[] | undefined;
  answers?: dnsPacket.Answer[] | undefined;
  additionals?: dnsPacket.Answer[] | undefined;
}

function decode(buf: Buffer): DnsAnswer {
  try {
    return dnsPacket.decode(buf) as DnsAnswer;
  } catch (e) {
    throw dnsError(`undecodable DNS answer: ${(e as Error).message}`);
  }
}

function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}

function checkAnswer(p: DnsAnswer, id: number, name: string, type: string): boolean {
  if (p.id !== id) return false;
  const q = p.questions?.[0];
  return q !== undefined && sameName(q.name, name) && q.type === type;
}

function udpQuery(
  server: HostPort,
  query: Buffer,
  id: number,
  name: string,
  type: string,
  timeoutMs: number,
): Promise<DnsAnswer> {
  return new Promise((resolve, reject) => {
    const family = isIP(server.host) === 6 ? 'udp6' : 'udp4';
    const sock = createSocket(family);
    const done = (fn: () => void) => {
      clearTimeout(timer);
      sock.close();
      fn();
    };
    const timer = setTimeout(
      () =>
        done(() =>
          reject(
            dnsError(`no DNS answer from ${formatHostPort(server.host, server.port)} within ${timeoutMs} ms`),
          ),
        ),
      timeoutMs,
    );
    sock.on('error', (e) =>
      done(() => reject(dnsError(`DNS query to ${formatHostPort(server.host, server.port)}: ${e.message}`))),
    );
    sock.on('message', (msg) => {
      let p: DnsAnswer;
      try {
        p = decode(msg);
      } catch {
        return; // not for us, or garbage: keep waiting for the real answer
      }
      if (checkAnswer(p, id, name, type)) done(() => resolve(p));
    });
    sock.send(query, server.port, server.host);
  });
}

function tcpQuery(
  server: HostPort,
  query: Buffer,
  id: number,
  name: string,
  type: string,
  timeoutMs: number,
): Promise<DnsAnswer> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: server.host, port: server.port });
    let buf = Buffer.alloc(0);
    const done = (fn: () => void) => {
      clearTimeout(timer);
      sock.destroy();
      fn();
    };
    const where = formatHostPort(server.host, server.port);
    const timer = setTimeout(
      () => done(() => reject(dnsError(`no DNS answer over TCP from ${where} within ${timeoutMs} ms`))),
      timeoutMs,
    );
    sock.on('error', (e) => done(() => reject(dnsError(`DNS query over TCP to ${where}: ${e.message}`))));
    sock.on('end', () =>
      done(() => reject(dnsError(`${where} closed the DNS TCP connection without an answer`))),
    );
    sock.on('connect', () => {
      const framed = Buffer.alloc(2 + query.length);
      framed.writeUInt16BE(query.length, 0);
      query.copy(framed, 2);
      sock.write(framed);
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2) return;
      const n = buf.readUInt16BE(0);
      if (buf.length < 2 + n) return;
      let p: DnsAnswer;
      try {
        p = decode(buf.subarray(2, 2 + n));
      } catch (e) {
        done(() => reject(e));
        return;
      }
      if (checkAnswer(p, id, name, type)) done(() => resolve(p));
      else done(() => reject(dnsError(`DNS answer over TCP from ${where} does not match the query`)));
    });
  });
}

/** One DNS query (UDP, then TCP if truncated). Throws KmsClientError('transport', 'DNS_FAILURE'). */
async function query(
  server: HostPort,
  name: string,
  type: 'SRV' | 'A' | 'AAAA',
  random: Random,
  timeoutMs: number,
): Promise<DnsAnswer> {
  const id = random.below(0x10000);
  const packet = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
  });
  let answer = await udpQuery(server, packet, id, name, type, timeoutMs);
  if (answer.flag_tc) answer = await tcpQuery(server, packet, id, name, type, timeoutMs);
  return answer;
}

function rcodeOf(p: DnsAnswer): string {
  return p.rcode ?? 'NOERROR';
}

/** The SRV records of `name` as published (unordered). NXDOMAIN or no records gives []. */
export async function querySrv(name: string, opts: DnsQueryOptions = {}): Promise<SrvRecord[]> {
  const server = opts.dnsServer ? parseHostPort(opts.dnsServer, DNS_PORT) : defaultDnsServer();
  const random = opts.random ?? defaultRandom();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const p = await query(server, name, 'SRV', random, timeoutMs);
  const rcode = rcodeOf(p);
  if (rcode === 'NXDOMAIN') return [];
  if (rcode !== 'NOERROR')
    throw dnsError(
      `DNS server ${formatHostPort(server.host, server.port)} answered ${rcode} for ${name} SRV`,
    );
  const glue = new Map<string, string[]>();
  for (const a of p.additionals ?? []) {
    if ((a.type === 'A' || a.type === 'AAAA') && typeof a.data === 'string') {
      const k = a.name.toLowerCase().replace(/\.$/, '');
      glue.set(k, [...(glue.get(k) ?? []), a.data]);
    }
  }
  const out: SrvRecord[] = [];
  for (const a of p.answers ?? []) {
    if (a.type !== 'SRV' || !sameName(a.name, name)) continue;
    const target = a.data.target.replace(/\.$/, '');
    // RFC 2782: a single record with target "." means the service is decidedly not available here.
    if (target === '' || target === '.') continue;
    const rec: SrvRecord = {
      priority: a.data.priority ?? 0,
      weight: a.data.weight ?? 0,
      port: a.data.port,
      target,
    };
    const addresses = glue.get(target.toLowerCase());
    if (addresses) rec.addresses = addresses;
    out.push(rec);
  }
  return out;
}

/**
 * RFC 2782 order: ascending priority; within one priority, repeatedly pick by weight: the records left
 * are listed with the weight-0 ones first (then in published order), a number r is drawn uniformly in
 * [0, sum of weights], and the first record whose running sum reaches r is taken. A record's chance to
 * be taken next is (weight + [it is listed first]) / (sum + 1).
 */
export function orderSrvRecords(records: readonly SrvRecord[], random: Random): SrvRecord[] {
  const priorities = [...new Set(records.map((r) => r.priority))].sort((a, b) => a - b);
  const out: SrvRecord[] = [];
  for (const prio of priorities) {
    const group = records.filter((r) => r.priority === prio);
    const left = [...group.filter((r) => r.weight === 0), ...group.filter((r) => r.weight !== 0)];
    while (left.length > 0) {
      if (left.length === 1) {
        out.push(left.pop()!);
        break;
      }
      const sum = left.reduce((s, r) => s + r.weight, 0);
      const pick = random.int(0, sum);
      let running = 0;
      let idx = left.length - 1;
      for (let i = 0; i < left.length; i++) {
        running += left[i]!.weight;
        if (running >= pick) {
          idx = i;
          break;
        }
      }
      out.push(left.splice(idx, 1)[0]!);
    }
  }
  return out;
}

/** `_vlmcs._tcp.DOMAIN`, the name Windows clients query (and KMS hosts publish). */
function srvName(domain: string): string {
  return `_vlmcs._tcp.${domain.replace(/\.$/, '')}`;
}

/**
 * Queries `_vlmcs._tcp.DOMAIN` and returns the targets in the order a client tries them. A target's
 * addresses come from the answer's additional section (glue) when it has any; otherwise the target
 * is looked up at the same DNS server, A then AAAA (both are asked; IPv4 addresses first, each family
 * in the order the server gave). When that finds nothing, `addresses` is left unset and
 * activateWithDiscovery asks the system resolver at connect time.
 */
export async function discoverKmsHosts(domain: string, opts: DnsQueryOptions = {}): Promise<SrvRecord[]> {
  const random = opts.random ?? defaultRandom();
  const server = opts.dnsServer ? parseHostPort(opts.dnsServer, DNS_PORT) : defaultDnsServer();
  const dnsServer = formatHostPort(server.host, server.port);
  const records = orderSrvRecords(await querySrv(srvName(domain), { ...opts, dnsServer, random }), random);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  for (const r of records) {
    if (r.addresses || isIP(r.target) !== 0) continue;
    const found: string[] = [];
    for (const type of ['A', 'AAAA'] as const) {
      try {
        const p = await query(server, r.target, type, random, timeoutMs);
        for (const a of p.answers ?? []) {
          if ((a.type === 'A' || a.type === 'AAAA') && a.type === type && !found.includes(a.data)) {
            found.push(a.data);
          }
        }
      } catch {
        // This family stays unknown; the other may still answer, else the system resolver is asked.
      }
    }
    if (found.length > 0) r.addresses = found;
  }
  return records;
}

/** One connection attempt: one address of one SRV target. */
export interface DiscoveryAttempt {
  target: string;
  /**
   * The address connected to (from glue, the DNS server or the system resolver); the target name
   * itself when the system resolver found no address for it.
   */
  host: string;
  port: number;
  priority: number;
  weight: number;
  /** Why this address was passed over; absent for the one that answered. */
  error?: FailureInfo;
}

export interface DiscoveryOutcome {
  domain: string;
  srvName: string;
  /** The DNS server asked, as HOST:PORT. */
  dnsServer: string;
  /** The SRV records in the order tried. */
  records: SrvRecord[];
  /** Every address tried, in order: each address of a target before the next target. */
  attempts: DiscoveryAttempt[];
  /** The address that answered, or null. */
  host: string | null;
  port: number | null;
  /** One per request; when no host answered, one failure with HRESULT 0xC004F074. */
  results: ActivationResult[];
}

export type DiscoveryActivateOptions = Omit<ActivateOptions, 'host' | 'port'> & {
  domain: string;
  dnsServer?: string;
};

/**
 * The addresses to try for a record, in order: the ones discovery found (glue or A/AAAA at the DNS
 * server), the target itself when it is an IP literal, else every address the system resolver gives
 * (dns.lookup with all: true, in the resolver's order). Throws KmsClientError('transport',
 * 'HOST_NOT_FOUND') when the system resolver has none.
 */
async function addressesOf(r: SrvRecord): Promise<string[]> {
  if (r.addresses && r.addresses.length > 0) return r.addresses;
  if (isIP(r.target) !== 0) return [r.target];
  let found: { address: string }[];
  try {
    found = await dnsLookup(r.target, { all: true });
  } catch (e) {
    throw new KmsClientError(
      'transport',
      'HOST_NOT_FOUND',
      `resolving ${r.target}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const out = [...new Set(found.map((a) => a.address))];
  if (out.length === 0) {
    throw new KmsClientError('transport', 'HOST_NOT_FOUND', `resolving ${r.target}: no address`);
  }
  return out;
}

function failureOf(e: unknown): FailureInfo {
  return e instanceof KmsClientError
    ? e.info()
    : { kind: 'transport', code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

/**
 * Discovers KMS hosts for `domain` and activates against the first that answers. Each address of a
 * target is tried in turn before the next target. An address "does not answer" when the TCP connection
 * or the RPC bind fails (refused, timeout, closed, bind refused); the client then moves on to the
 * target's next address, then to the next target. Once a host has bound, all requests go there: an
 * error HRESULT or a failed check on its answers is its result, not a reason to fail over. When no
 * address answers (or DNS gives no target), the outcome carries one failure with 0xC004F074.
 */
export async function activateWithDiscovery(opts: DiscoveryActivateOptions): Promise<DiscoveryOutcome> {
  const random = opts.random ?? defaultRandom();
  const name = srvName(opts.domain);
  // Resolve options first so a bad product, DNS server address or a resolv.conf without a nameserver
  // is an option error (ProtocolError), not a discovery failure; one CMID for every target tried, as
  // one machine has one.
  const product = resolveProduct(opts, opts.catalog);
  const cmid = opts.cmid !== undefined ? parseGuid(opts.cmid) : randomGuid(random);
  const server = opts.dnsServer ? parseHostPort(opts.dnsServer, DNS_PORT) : defaultDnsServer();
  const dnsServer = formatHostPort(server.host, server.port);
  const outcome: DiscoveryOutcome = {
    domain: opts.domain,
    srvName: name,
    dnsServer,
    records: [],
    attempts: [],
    host: null,
    port: null,
    results: [],
  };
  const failAll = (message: string, code: string): DiscoveryOutcome => {
    outcome.results = [
      { ...unansweredResult(product, cmid, '', 0), error: { kind: 'transport', code, message } },
    ];
    return outcome;
  };
  try {
    const dnsOpts: DnsQueryOptions = { random, dnsServer };
    if (opts.timeoutMs !== undefined) dnsOpts.timeoutMs = opts.timeoutMs;
    outcome.records = await discoverKmsHosts(opts.domain, dnsOpts);
  } catch (e) {
    if (e instanceof KmsClientError) return failAll(`discovery of ${name} failed: ${e.message}`, e.code);
    throw e;
  }
  if (outcome.records.length === 0) return failAll(`no SRV records for ${name}`, 'NO_SRV_RECORDS');
  for (const r of outcome.records) {
    const attemptAt = (host: string): DiscoveryAttempt => {
      const a: DiscoveryAttempt = {
        target: r.target,
        host,
        port: r.port,
        priority: r.priority,
        weight: r.weight,
      };
      outcome.attempts.push(a);
      return a;
    };
    let addresses: string[];
    try {
      addresses = await addressesOf(r);
    } catch (e) {
      attemptAt(r.target).error = failureOf(e);
      continue;
    }
    for (const host of addresses) {
      const attempt = attemptAt(host);
      const client = new KmsClient({ ...opts, cmid, host, port: r.port, random });
      try {
        await client.connect();
      } catch (e) {
        client.close();
        attempt.error = failureOf(e);
        continue;
      }
      outcome.host = host;
      outcome.port = r.port;
      outcome.results = await client.run(opts.requests ?? 1, opts.newConnection ?? false);
      return outcome;
    }
  }
  const tried = outcome.attempts
    .map((a) => `${formatHostPort(a.host, a.port)} (${a.error?.code ?? '?'}: ${a.error?.message ?? ''})`)
    .join('; ');
  return failAll(`no KMS host answered: ${tried}`, 'NO_KMS_ANSWERED');
}
