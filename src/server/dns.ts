import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import dnsPacket from 'dns-packet';
import type { Logger } from 'pino';
import { DEFAULT_DNS_TTL } from '../defaults.js';
import type { ListenAddress } from './tcp.js';

/**
 * A small authoritative DNS responder for one lab domain, so Windows clients (and `kmslab activate
 * --discover`) find the host the way they find a real one: `_vlmcs._tcp.DOMAIN` SRV (spec a.1, f.7),
 * with the A/AAAA records of every target in the additional section, and A/AAAA for the target names.
 *
 * Answers over UDP and TCP (2-byte length prefix, several queries per connection). Inside the domain:
 * NOERROR with the records, NOERROR without records (NODATA) for a name that exists with other types or
 * has names below it, NXDOMAIN otherwise; outside it: REFUSED (no recursion). A UDP answer larger than
 * 512 bytes (or the client's EDNS0 size) is replaced by an empty one with the TC bit, so the client asks
 * again over TCP.
 */
export interface DnsTarget {
  /** Host name the SRV record points at (e.g. `kms1.lab.test`); no IP literals (RFC 2782). */
  host: string;
  port: number;
  priority?: number;
  weight?: number;
  /** IPv4 and IPv6 addresses of the target, published as A/AAAA (glue in the additional section). */
  addresses: string[];
}

export interface DnsResponderOptions {
  listen: ListenAddress;
  /** The lab domain (`lab.test`): the responder is authoritative for it and everything below. */
  domain: string;
  targets: DnsTarget[];
  /** TTL of every record, seconds (default 600). */
  ttl?: number;
  logger?: Logger;
  /** Close a TCP connection idle this long (default 10 s). */
  tcpIdleTimeoutMs?: number;
}

/** `await using dns = await startDnsResponder(...)` closes it at the end of the block. */
export interface DnsResponder extends AsyncDisposable {
  /** Where it answers (the same port for UDP and TCP; port 0 resolved). */
  address: ListenAddress;
  zone: DnsZone;
  close(): Promise<void>;
}

/** The validated records one responder serves. */
export interface DnsZone {
  domain: string;
  srvName: string;
  ttl: number;
  targets: Required<DnsTarget>[];
}

export { DEFAULT_DNS_TTL };

const MAX_UDP_SIZE = 512;
/** Largest EDNS0 UDP payload we honour (RFC 6891 suggests 4096 at most; DNS flag day 2020: 1232). */
const MAX_EDNS_UDP_SIZE = 4096;

/** Concurrent DNS-over-TCP connections; Node closes any beyond it at once. */
const MAX_TCP_CONNECTIONS = 256;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const OPCODE_QUERY = 0;

/** `_vlmcs._tcp.DOMAIN`. */
export function vlmcsSrvName(domain: string): string {
  return `_vlmcs._tcp.${normalizeName(domain)}`;
}

function normalizeName(name: string): string {
  return name.trim().replace(/\.$/, '').toLowerCase();
}

/** A DNS host name: 1–63-character labels of letters, digits and hyphens (underscores allowed), ≤ 253 in all. */
export function checkDnsName(name: string, what: string): string {
  const n = normalizeName(name);
  if (n.length === 0 || n.length > 253)
    throw new RangeError(`${what} "${name}" is not a DNS name (1 to 253 characters)`);
  for (const label of n.split('.')) {
    if (!/^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label)) {
      throw new RangeError(
        `${what} "${name}": label "${label}" is not valid (letters, digits and inner hyphens, 1 to 63 characters)`,
      );
    }
  }
  return n;
}

function u16(v: number | undefined, fallback: number, what: string, min = 0): number {
  const n = v ?? fallback;
  if (!Number.isInteger(n) || n < min || n > 0xffff)
    throw new RangeError(`${what} must be an integer in ${min}..65535`);
  return n;
}

/** Checks the options and builds the zone (throws RangeError with a clear message). */
export function buildZone(opts: Pick<DnsResponderOptions, 'domain' | 'targets' | 'ttl'>): DnsZone {
  const domain = checkDnsName(opts.domain, 'domain');
  const ttl = opts.ttl ?? DEFAULT_DNS_TTL;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff)
    throw new RangeError('ttl must be an integer in 0..2147483647');
  if (opts.targets.length === 0) throw new RangeError('at least one SRV target is needed');
  const targets = opts.targets.map((t) => {
    if (net.isIP(t.host.replace(/^\[|\]$/g, '')) !== 0) {
      throw new RangeError(
        `SRV target "${t.host}" is an address: SRV records point at host names (give --host)`,
      );
    }
    const host = checkDnsName(t.host, 'target host');
    for (const a of t.addresses) {
      if (net.isIP(a) === 0) throw new RangeError(`target ${host}: "${a}" is not an IPv4 or IPv6 address`);
    }
    return {
      host,
      port: u16(t.port, 1688, `target ${host}: port`, 1),
      priority: u16(t.priority, 0, `target ${host}: priority`),
      weight: u16(t.weight, 0, `target ${host}: weight`),
      addresses: [...t.addresses],
    };
  });
  return { domain, srvName: vlmcsSrvName(domain), ttl, targets };
}

function inDomain(name: string, domain: string): boolean {
  return name === domain || name.endsWith(`.${domain}`);
}

type Records = { answers: dnsPacket.Answer[]; additionals: dnsPacket.Answer[] };

function addressRecords(zone: DnsZone, host: string, type: 'A' | 'AAAA' | 'ANY'): dnsPacket.Answer[] {
  const out: dnsPacket.Answer[] = [];
  const seen = new Set<string>();
  for (const t of zone.targets) {
    if (t.host !== host) continue;
    for (const a of t.addresses) {
      const family = net.isIP(a) === 6 ? 'AAAA' : 'A';
      if ((type === 'ANY' || type === family) && !seen.has(a)) {
        seen.add(a);
        out.push({ type: family, name: host, ttl: zone.ttl, class: 'IN', data: a });
      }
    }
  }
  return out;
}

function soa(zone: DnsZone): dnsPacket.Answer {
  return {
    type: 'SOA',
    name: zone.domain,
    ttl: zone.ttl,
    class: 'IN',
    data: {
      mname: `kmslab.${zone.domain}`,
      rname: `hostmaster.${zone.domain}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: Math.min(zone.ttl, 300),
    },
  };
}

/** Every name that exists in the zone (has records). */
function zoneNames(zone: DnsZone): string[] {
  return [
    zone.domain,
    zone.srvName,
    ...zone.targets.map((t) => t.host).filter((h) => inDomain(h, zone.domain)),
  ];
}

/** What the zone says about one question: rcode and records. */
function lookup(
  zone: DnsZone,
  name: string,
  type: string,
): { rcode: number; authoritative: boolean } & Records {
  const n = normalizeName(name);
  const empty = { answers: [], additionals: [] };
  const isTarget = zone.targets.some((t) => t.host === n);
  if (!inDomain(n, zone.domain) && !isTarget) return { rcode: RCODE.REFUSED, authoritative: false, ...empty };
  if (n === zone.srvName && (type === 'SRV' || type === 'ANY')) {
    const answers: dnsPacket.Answer[] = zone.targets.map((t) => ({
      type: 'SRV',
      name: zone.srvName,
      ttl: zone.ttl,
      class: 'IN',
      data: { priority: t.priority, weight: t.weight, port: t.port, target: t.host },
    }));
    const hosts = [...new Set(zone.targets.map((t) => t.host))];
    const additionals = hosts.flatMap((h) => addressRecords(zone, h, 'ANY'));
    return { rcode: RCODE.NOERROR, authoritative: true, answers, additionals };
  }
  if (isTarget && (type === 'A' || type === 'AAAA' || type === 'ANY')) {
    return {
      rcode: RCODE.NOERROR,
      authoritative: true,
      answers: addressRecords(zone, n, type),
      additionals: [],
    };
  }
  if (n === zone.domain && (type === 'SOA' || type === 'ANY')) {
    return { rcode: RCODE.NOERROR, authoritative: true, answers: [soa(zone)], additionals: [] };
  }
  // The name exists (other types), or has names below it (an empty non-terminal, RFC 8020): NODATA.
  const names = zoneNames(zone);
  if (isTarget || names.some((x) => x === n || x.endsWith(`.${n}`))) {
    return { rcode: RCODE.NOERROR, authoritative: true, ...empty };
  }
  return { rcode: RCODE.NXDOMAIN, authoritative: true, ...empty };
}

function headerOnly(id: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(flags, 2);
  return b;
}

const QR = 0x8000;

/**
 * Answers one DNS message (pure: bytes in, bytes out). Returns null for input that must not be answered
 * (shorter than a header, or itself a response).
 */
export function answerQuery(zone: DnsZone, query: Uint8Array, transport: 'udp' | 'tcp'): Buffer | null {
  const buf = Buffer.from(query.buffer, query.byteOffset, query.byteLength);
  if (buf.length < 12) return null;
  const id = buf.readUInt16BE(0);
  const qflags = buf.readUInt16BE(2);
  if (qflags & QR) return null;
  const opcode = (qflags >> 11) & 0xf;
  const rd = qflags & dnsPacket.RECURSION_DESIRED;
  let q: dnsPacket.DecodedPacket;
  try {
    q = dnsPacket.decode(buf);
  } catch {
    return headerOnly(id, QR | (opcode << 11) | rd | RCODE.FORMERR);
  }
  const questions = q.questions ?? [];
  if (opcode !== OPCODE_QUERY) return headerOnly(id, QR | (opcode << 11) | rd | RCODE.NOTIMP);
  const question = questions[0];
  if (questions.length !== 1 || !question) return headerOnly(id, QR | rd | RCODE.FORMERR);
  const opt = (q.additionals ?? []).find((a) => a.type === 'OPT') as dnsPacket.OptAnswer | undefined;
  const qclass = question.class ?? 'IN';
  const r =
    qclass === 'IN' || qclass === 'ANY'
      ? lookup(zone, question.name, question.type)
      : { rcode: RCODE.REFUSED, authoritative: false, answers: [], additionals: [] };
  const negative = r.authoritative && r.answers.length === 0;
  const flags = (r.authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | rd | r.rcode;
  const ednsOut: dnsPacket.Answer[] = opt
    ? [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: MAX_EDNS_UDP_SIZE,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        } as dnsPacket.OptAnswer,
      ]
    : [];
  const packet: dnsPacket.Packet = {
    type: 'response',
    id,
    flags,
    questions: [question],
    answers: r.answers,
    authorities: negative ? [soa(zone)] : [],
    additionals: [...r.additionals, ...ednsOut],
  };
  const out = dnsPacket.encode(packet);
  if (transport === 'udp') {
    const limit = opt
      ? Math.max(MAX_UDP_SIZE, Math.min(opt.udpPayloadSize, MAX_EDNS_UDP_SIZE))
      : MAX_UDP_SIZE;
    if (out.length > limit) {
      return dnsPacket.encode({
        type: 'response',
        id,
        flags: flags | dnsPacket.TRUNCATED_RESPONSE,
        questions: [question],
        answers: [],
        authorities: [],
        additionals: ednsOut,
      });
    }
  }
  return out;
}

/** Starts answering on UDP and TCP at the same address (port 0: one free port for both). */
export async function startDnsResponder(opts: DnsResponderOptions): Promise<DnsResponder> {
  const zone = buildZone(opts);
  const log = opts.logger;
  const idleMs = opts.tcpIdleTimeoutMs ?? 10_000;
  const family = net.isIP(opts.listen.host) === 6 ? 'udp6' : 'udp4';
  let udp: UdpSocket | null = null;
  let tcp: net.Server | null = null;
  const sockets = new Set<net.Socket>();
  // With port 0 the UDP port is picked first and TCP must get the same one: retry on a clash.
  for (let attempt = 0; ; attempt++) {
    udp = createSocket({ type: family, reuseAddr: false });
    const u = udp;
    await new Promise<void>((resolve, reject) => {
      u.once('error', reject);
      u.bind(opts.listen.port, opts.listen.host, () => {
        u.off('error', reject);
        resolve();
      });
    });
    const port = u.address().port;
    const t = net.createServer((s) => serveTcp(s));
    t.maxConnections = MAX_TCP_CONNECTIONS;
    try {
      await new Promise<void>((resolve, reject) => {
        t.once('error', reject);
        t.listen({ host: opts.listen.host, port, exclusive: true }, () => {
          t.off('error', reject);
          resolve();
        });
      });
      tcp = t;
      break;
    } catch (e) {
      await new Promise<void>((r) => u.close(() => r()));
      udp = null;
      if (opts.listen.port !== 0 || attempt >= 20 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE')
        throw e;
    }
  }
  const udpSocket = udp;
  udpSocket.on('error', (e) => log?.error({ err: e }, 'DNS UDP socket error'));
  udpSocket.on('message', (msg, rinfo) => {
    let out: Buffer | null;
    try {
      out = answerQuery(zone, msg, 'udp');
    } catch (e) {
      log?.error({ err: e }, 'DNS answer failed');
      out = msg.length >= 12 ? headerOnly(msg.readUInt16BE(0), QR | RCODE.SERVFAIL) : null;
    }
    if (out) udpSocket.send(out, rinfo.port, rinfo.address);
  });
  tcp.on('error', (e) => log?.error({ err: e }, 'DNS TCP listener error'));

  function serveTcp(s: net.Socket): void {
    sockets.add(s);
    let buf: Buffer = Buffer.alloc(0);
    s.setTimeout(idleMs, () => s.destroy());
    s.on('error', () => s.destroy());
    s.on('close', () => sockets.delete(s));
    s.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) break;
        const msg = buf.subarray(2, 2 + n);
        buf = buf.subarray(2 + n);
        let out: Buffer | null;
        try {
          out = answerQuery(zone, msg, 'tcp');
        } catch (e) {
          log?.error({ err: e }, 'DNS answer failed');
          out = msg.length >= 12 ? headerOnly(msg.readUInt16BE(0), QR | RCODE.SERVFAIL) : null;
        }
        if (!out) {
          s.destroy();
          return;
        }
        const len = Buffer.alloc(2);
        len.writeUInt16BE(out.length, 0);
        s.write(Buffer.concat([len, out]));
      }
    });
  }

  const a = tcp.address() as net.AddressInfo;
  const address = { host: a.address, port: a.port };
  log?.info({ dns: address, srv: zone.srvName, targets: zone.targets }, 'DNS responder for the lab domain');
  const tcpServer = tcp;
  let closed = false;
  const responder: DnsResponder = {
    address,
    zone,
    async close() {
      if (closed) return;
      closed = true;
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((r) => tcpServer.close(() => r())),
        new Promise<void>((r) => udpSocket.close(() => r())),
      ]);
    },
    [Symbol.asyncDispose]: () => responder.close(),
  };
  return responder;
}

/**
 * SRV targets for a host listening on `addresses`: one target per distinct port, named `name` (then
 * `name-2`, ...), published with the listen addresses. A wildcard address (0.0.0.0, ::) stands for every
 * address of this machine's interfaces of that family (external ones, or loopback when there are none).
 */
export function targetsForListen(
  addresses: readonly ListenAddress[],
  name: string,
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): DnsTarget[] {
  const byPort = new Map<number, string[]>();
  const expand = (host: string): string[] => {
    const h = host.replace(/^\[|\]$/g, '');
    if (h === 'localhost') return ['127.0.0.1'];
    if (h !== '0.0.0.0' && h !== '::') return net.isIP(h) ? [h] : [];
    const all = Object.values(interfaces).flatMap((l) => l ?? []);
    const pick = (fam: 'IPv4' | 'IPv6') => {
      const ext = all.filter((i) => i.family === fam && !i.internal && !i.address.startsWith('fe80'));
      return (ext.length > 0 ? ext : all.filter((i) => i.family === fam && i.internal)).map((i) => i.address);
    };
    return h === '0.0.0.0' ? pick('IPv4') : [...pick('IPv4'), ...pick('IPv6')];
  };
  for (const a of addresses) {
    const list = byPort.get(a.port) ?? [];
    for (const ip of expand(a.host)) if (!list.includes(ip)) list.push(ip);
    byPort.set(a.port, list);
  }
  const base = normalizeName(name);
  const [first, ...rest] = base.split('.');
  return [...byPort.entries()].map(([port, addrs], i) => ({
    host: i === 0 ? base : [`${first}-${i + 1}`, ...rest].join('.'),
    port,
    priority: 0,
    weight: 0,
    addresses: addrs,
  }));
}
