import { createSocket } from 'node:dgram';
import net from 'node:net';
import { Command } from 'commander';
import dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { registerDnsRecord } from '../../../src/cli/dns-record.js';
import { resolveDnsRecord } from '../../../src/cli/dns-record-run.js';
import { activateWithDiscovery, discoverKmsHosts, querySrv } from '../../../src/client/discover.js';
import { SeededRandom } from '../../../src/host/random.js';
import {
  answerQuery,
  buildZone,
  DEFAULT_DNS_TTL,
  type DnsResponder,
  type DnsResponderOptions,
  startDnsResponder,
  targetsForListen,
} from '../../../src/server/dns.js';
import { type HostRuntime, startHostRuntime } from '../../../src/server/runtime.js';

const DOMAIN = 'lab.test';
const SRV = `_vlmcs._tcp.${DOMAIN}`;

const responders: DnsResponder[] = [];
const runtimes: HostRuntime[] = [];
afterEach(async () => {
  for (const r of responders.splice(0)) await r.close();
  for (const r of runtimes.splice(0)) await r.close();
});

async function start(over: Partial<DnsResponderOptions> = {}): Promise<DnsResponder> {
  const r = await startDnsResponder({
    listen: { host: '127.0.0.1', port: 0 },
    domain: DOMAIN,
    ttl: 300,
    targets: [
      { host: 'kms1.lab.test', port: 1688, priority: 0, weight: 60, addresses: ['127.0.0.1', '::1'] },
      { host: 'kms2.lab.test', port: 1689, priority: 10, weight: 0, addresses: ['127.0.0.2'] },
    ],
    ...over,
  });
  responders.push(r);
  return r;
}

type Decoded = dnsPacket.DecodedPacket & { rcode: string };

let nextId = 1;
function query(name: string, type: dnsPacket.RecordType, edns?: number): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: nextId++ & 0xffff,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    ...(edns
      ? {
          additionals: [
            {
              type: 'OPT',
              name: '.',
              udpPayloadSize: edns,
              extendedRcode: 0,
              ednsVersion: 0,
              flags: 0,
              flag_do: false,
              options: [],
            },
          ],
        }
      : {}),
  });
}

function udp(r: DnsResponder, packet: Buffer): Promise<{ raw: Buffer; p: Decoded }> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error('no UDP answer'));
    }, 2000);
    sock.on('message', (raw) => {
      clearTimeout(timer);
      sock.close();
      resolve({ raw, p: dnsPacket.decode(raw) as Decoded });
    });
    sock.send(packet, r.address.port, '127.0.0.1');
  });
}

/** Sends several length-prefixed queries on one TCP connection, split at awkward places. */
function tcp(r: DnsResponder, packets: Buffer[]): Promise<Decoded[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: r.address.port });
    const framed = Buffer.concat(
      packets.map((p) => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(p.length);
        return Buffer.concat([len, p]);
      }),
    );
    let buf = Buffer.alloc(0);
    const out: Decoded[] = [];
    s.on('error', reject);
    s.on('connect', () => {
      s.write(framed.subarray(0, 1));
      setTimeout(() => s.write(framed.subarray(1)), 20);
    });
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const n = buf.readUInt16BE(0);
        out.push(dnsPacket.decode(buf.subarray(2, 2 + n)) as Decoded);
        buf = buf.subarray(2 + n);
      }
      if (out.length === packets.length) {
        s.destroy();
        resolve(out);
      }
    });
  });
}

describe('DNS responder over loopback', () => {
  it('answers the _vlmcs._tcp SRV query over UDP with the targets and their A/AAAA glue', async () => {
    const r = await start();
    const { p } = await udp(r, query(SRV, 'SRV'));
    expect(p.rcode).toBe('NOERROR');
    expect(p.flag_aa).toBe(true);
    expect(p.flag_tc).toBe(false);
    expect(p.flag_rd).toBe(true);
    const srv = (p.answers ?? []).filter((a) => a.type === 'SRV') as dnsPacket.SrvAnswer[];
    expect(
      srv.map((a) => [a.name, a.ttl, a.data.priority, a.data.weight, a.data.port, a.data.target]),
    ).toEqual([
      [SRV, 300, 0, 60, 1688, 'kms1.lab.test'],
      [SRV, 300, 10, 0, 1689, 'kms2.lab.test'],
    ]);
    const glue = (p.additionals ?? []).map((a) => [a.type, a.name, (a as dnsPacket.StringAnswer).data]);
    expect(glue).toEqual([
      ['A', 'kms1.lab.test', '127.0.0.1'],
      ['AAAA', 'kms1.lab.test', '::1'],
      ['A', 'kms2.lab.test', '127.0.0.2'],
    ]);
  });

  it('answers over TCP, several queries on one connection, split across segments', async () => {
    const r = await start();
    const [srv, a, aaaa] = await tcp(r, [
      query(SRV, 'SRV'),
      query('KMS1.lab.test.', 'A'),
      query('kms2.lab.test', 'AAAA'),
    ]);
    expect(srv!.answers).toHaveLength(2);
    expect(srv!.additionals).toHaveLength(3);
    expect(a!.rcode).toBe('NOERROR');
    expect(a!.answers?.map((x) => (x as dnsPacket.StringAnswer).data)).toEqual(['127.0.0.1']);
    // kms2 has no IPv6 address: NOERROR without records (NODATA), with the SOA for negative caching.
    expect(aaaa!.rcode).toBe('NOERROR');
    expect(aaaa!.answers).toEqual([]);
    expect(aaaa!.authorities?.[0]?.type).toBe('SOA');
  });

  it('answers A and AAAA for the target names', async () => {
    const r = await start();
    const a = (await udp(r, query('kms1.lab.test', 'A'))).p;
    const aaaa = (await udp(r, query('kms1.lab.test', 'AAAA'))).p;
    expect(a.answers?.map((x) => [x.type, (x as dnsPacket.StringAnswer).data])).toEqual([['A', '127.0.0.1']]);
    expect(aaaa.answers?.map((x) => [x.type, (x as dnsPacket.StringAnswer).data])).toEqual([['AAAA', '::1']]);
  });

  it('gives NXDOMAIN inside the domain, NODATA for names that exist, REFUSED outside', async () => {
    const r = await start();
    const nx = (await udp(r, query('nothing.lab.test', 'A'))).p;
    expect(nx.rcode).toBe('NXDOMAIN');
    expect(nx.flag_aa).toBe(true);
    expect(nx.authorities?.[0]?.type).toBe('SOA');
    expect((await udp(r, query('_udp.lab.test', 'SRV'))).p.rcode).toBe('NXDOMAIN');
    // _tcp.lab.test has a name below it (an empty non-terminal): NODATA, not NXDOMAIN.
    const ent = (await udp(r, query('_tcp.lab.test', 'SRV'))).p;
    expect([ent.rcode, ent.answers?.length]).toEqual(['NOERROR', 0]);
    const txt = (await udp(r, query(SRV, 'TXT'))).p;
    expect([txt.rcode, txt.answers?.length]).toEqual(['NOERROR', 0]);
    const soa = (await udp(r, query('lab.test', 'SOA'))).p;
    expect(soa.answers?.[0]?.type).toBe('SOA');
    const out = (await udp(r, query('_vlmcs._tcp.example.com', 'SRV'))).p;
    expect(out.rcode).toBe('REFUSED');
    expect(out.flag_aa).toBe(false);
    expect(out.answers).toEqual([]);
    // Not fooled by a suffix that is not a label boundary.
    expect((await udp(r, query('evillab.test', 'A'))).p.rcode).toBe('REFUSED');
  });

  it('sets the truncation bit for UDP answers over 512 bytes; TCP and EDNS0 get everything', async () => {
    const targets = Array.from({ length: 12 }, (_, i) => ({
      host: `kms-host-number-${i}.site-${i}.lab.test`,
      port: 1688,
      priority: i,
      weight: 10,
      addresses: [`127.0.0.${i + 1}`, `::ffff:127.0.0.${i + 1}`],
    }));
    const r = await start({ targets });
    const { raw, p } = await udp(r, query(SRV, 'SRV'));
    expect(p.flag_tc).toBe(true);
    expect(p.answers).toEqual([]);
    expect(raw.length).toBeLessThanOrEqual(512);
    const [full] = await tcp(r, [query(SRV, 'SRV')]);
    expect(full!.flag_tc).toBe(false);
    expect(full!.answers).toHaveLength(12);
    expect(full!.additionals).toHaveLength(24);
    const edns = await udp(r, query(SRV, 'SRV', 4096));
    expect(edns.p.flag_tc).toBe(false);
    expect(edns.raw.length).toBeGreaterThan(512);
    expect(edns.p.answers).toHaveLength(12);
    expect(edns.p.additionals?.some((a) => a.type === 'OPT')).toBe(true);
    // The client emulator retries over TCP by itself.
    const records = await querySrv(SRV, { dnsServer: `127.0.0.1:${r.address.port}`, timeoutMs: 2000 });
    expect(records).toHaveLength(12);
  });

  it('is found by the client emulator, which then activates against the host it names', async () => {
    const rt = await startHostRuntime({
      clock: 'manual',
      store: 'memory',
      seed: 3,
      listen: [{ host: '127.0.0.1', port: 0 }],
    });
    runtimes.push(rt);
    const targets = targetsForListen(rt.addresses, 'kmslab.lab.test');
    expect(targets).toEqual([
      {
        host: 'kmslab.lab.test',
        port: rt.addresses[0]!.port,
        priority: 0,
        weight: 0,
        addresses: ['127.0.0.1'],
      },
    ]);
    const dns = await start({ targets });
    const dnsServer = `127.0.0.1:${dns.address.port}`;
    const found = await discoverKmsHosts(DOMAIN, { dnsServer, timeoutMs: 2000, random: new SeededRandom(1) });
    expect(found.map((f) => [f.target, f.port, f.addresses])).toEqual([
      ['kmslab.lab.test', rt.addresses[0]!.port, ['127.0.0.1']],
    ]);
    const outcome = await activateWithDiscovery({
      domain: DOMAIN,
      dnsServer,
      product: 'Windows Server 2022 Standard',
      random: new SeededRandom(2),
      clock: rt.clock,
      timeoutMs: 3000,
    });
    expect(outcome.port).toBe(rt.addresses[0]!.port);
    expect(outcome.results[0]?.error).toBeUndefined();
    expect(outcome.results[0]?.count).toBe(1);
  });
});

describe('answerQuery (bytes in, bytes out)', () => {
  const zone = buildZone({
    domain: 'Lab.Test.',
    targets: [{ host: 'kms.lab.test', port: 1688, addresses: ['10.0.0.5'] }],
  });

  it('answers FORMERR to undecodable queries and nothing to fragments or responses', () => {
    const garbage = Buffer.from('abcd0100000100000000000007', 'hex');
    const out = dnsPacket.decode(answerQuery(zone, garbage, 'udp')!) as Decoded;
    expect(out.id).toBe(0xabcd);
    expect(out.rcode).toBe('FORMERR');
    expect(answerQuery(zone, Buffer.alloc(5), 'udp')).toBeNull();
    const response = dnsPacket.encode({
      type: 'response',
      id: 1,
      questions: [{ type: 'A', name: 'kms.lab.test' }],
    });
    expect(answerQuery(zone, response, 'udp')).toBeNull();
  });

  it('answers NOTIMP to other opcodes and FORMERR to several questions', () => {
    const q = query('kms.lab.test', 'A');
    q.writeUInt16BE(q.readUInt16BE(2) | (2 << 11), 2); // opcode STATUS
    expect((dnsPacket.decode(answerQuery(zone, q, 'udp')!) as Decoded).rcode).toBe('NOTIMP');
    const two = dnsPacket.encode({
      type: 'query',
      id: 9,
      questions: [
        { type: 'A', name: 'kms.lab.test' },
        { type: 'AAAA', name: 'kms.lab.test' },
      ],
    });
    expect((dnsPacket.decode(answerQuery(zone, two, 'udp')!) as Decoded).rcode).toBe('FORMERR');
  });

  it('normalises names: case and the trailing dot do not matter', () => {
    const out = dnsPacket.decode(answerQuery(zone, query('_VLMCS._TCP.LAB.TEST.', 'SRV'), 'udp')!) as Decoded;
    expect(out.answers).toHaveLength(1);
    expect((out.additionals?.[0] as dnsPacket.StringAnswer | undefined)?.data).toBe('10.0.0.5');
  });

  it('rejects bad zones with clear messages', () => {
    const t = { host: 'kms.lab.test', port: 1688, addresses: ['10.0.0.5'] };
    expect(() => buildZone({ domain: 'bad domain', targets: [t] })).toThrow(/not valid/);
    expect(() => buildZone({ domain: DOMAIN, targets: [] })).toThrow(/at least one/);
    expect(() => buildZone({ domain: DOMAIN, targets: [{ ...t, host: '10.0.0.5' }] })).toThrow(/host names/);
    expect(() => buildZone({ domain: DOMAIN, targets: [{ ...t, addresses: ['kms'] }] })).toThrow(
      /not an IPv4/,
    );
    expect(() => buildZone({ domain: DOMAIN, targets: [{ ...t, port: 70000 }] })).toThrow(/port/);
    expect(() => buildZone({ domain: DOMAIN, targets: [t], ttl: -1 })).toThrow(/ttl/);
  });

  it('expands wildcard listen addresses to the interface addresses, one target per port', () => {
    const ifaces = {
      lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }],
      eth0: [
        { address: '192.0.2.10', family: 'IPv4', internal: false },
        { address: '2001:db8::10', family: 'IPv6', internal: false },
      ],
    } as unknown as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>;
    expect(
      targetsForListen(
        [
          { host: '0.0.0.0', port: 1688 },
          { host: '::', port: 1689 },
          { host: '127.0.0.1', port: 1688 },
        ],
        'kmslab.lab.test',
        ifaces,
      ),
    ).toEqual([
      { host: 'kmslab.lab.test', port: 1688, priority: 0, weight: 0, addresses: ['192.0.2.10', '127.0.0.1'] },
      {
        host: 'kmslab-2.lab.test',
        port: 1689,
        priority: 0,
        weight: 0,
        addresses: ['192.0.2.10', '2001:db8::10'],
      },
    ]);
  });
});

describe('kmslab dns-record', () => {
  async function cli(args: string[]): Promise<string> {
    let out = '';
    const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
    registerDnsRecord(program, (s) => {
      out += s;
    });
    await program.parseAsync(['node', 'kmslab', 'dns-record', ...args]);
    return out;
  }

  it("defaults --ttl to the responder's TTL (both from src/defaults.ts)", () => {
    const program = new Command();
    registerDnsRecord(program);
    const ttl = program.commands[0]!.options.find((o) => o.long === '--ttl')!;
    expect(ttl.defaultValue).toBe(String(DEFAULT_DNS_TTL));
  });

  it('prints the zone-file line, an nsupdate script, a dnscmd line and a PowerShell line', async () => {
    const out = await cli([
      '--domain',
      'corp.example.com',
      '--host',
      'kms01',
      '--priority',
      '10',
      '--weight',
      '50',
      '--ttl',
      '3600',
    ]);
    const lines = out.split('\n');
    expect(lines).toContain('_vlmcs._tcp.corp.example.com. 3600 IN SRV 10 50 1688 kms01.corp.example.com.');
    const ns = lines.slice(lines.findIndex((l) => l.startsWith('zone ')));
    expect(ns.slice(0, 4)).toEqual([
      'zone corp.example.com.',
      'update delete _vlmcs._tcp.corp.example.com. SRV 10 50 1688 kms01.corp.example.com.',
      'update add _vlmcs._tcp.corp.example.com. 3600 IN SRV 10 50 1688 kms01.corp.example.com.',
      'send',
    ]);
    expect(lines).toContain(
      'dnscmd /RecordAdd corp.example.com _vlmcs._tcp 3600 SRV 10 50 1688 kms01.corp.example.com',
    );
    expect(lines).toContain(
      'Add-DnsServerResourceRecord -ZoneName corp.example.com -Srv -Name _vlmcs._tcp -DomainName kms01.corp.example.com -Priority 10 -Weight 50 -Port 1688 -TimeToLive 01:00:00',
    );
    // Every non-command line is a comment in each syntax it sits in.
    for (const l of lines) {
      if (l === '' || l.startsWith(';')) continue;
      expect(l).toMatch(/^(_vlmcs|zone |update |send|server |dnscmd |Add-DnsServerResourceRecord |kms01)/);
    }
  });

  it('takes a port, addresses and a DNS server, and prints one format alone', async () => {
    const zone = await cli([
      '--domain',
      'lab.test',
      '--host',
      'kms.lab.test.',
      '--port',
      '11688',
      '--address',
      '192.0.2.7',
      '--address',
      '2001:db8::7',
      '--format',
      'zone',
    ]);
    expect(zone).toBe(
      [
        '_vlmcs._tcp.lab.test. 600 IN SRV 0 0 11688 kms.lab.test.',
        'kms.lab.test. 600 IN A 192.0.2.7',
        'kms.lab.test. 600 IN AAAA 2001:db8::7',
        '',
      ].join('\n'),
    );
    const ns = await cli([
      '--domain',
      'lab.test',
      '--host',
      'kms',
      '--dns-server',
      '192.0.2.53',
      '--format',
      'nsupdate',
      '--address',
      '192.0.2.7',
    ]);
    expect(ns.split('\n')[0]).toBe('server 192.0.2.53');
    expect(ns).toContain('update add kms.lab.test. 600 IN A 192.0.2.7\nsend\n');
    const cmd = await cli([
      '--domain',
      'lab.test',
      '--host',
      'kms',
      '--dns-server',
      'dc01',
      '--format',
      'dnscmd',
      '--address',
      '192.0.2.7',
    ]);
    expect(cmd).toBe(
      'dnscmd dc01 /RecordAdd lab.test _vlmcs._tcp 600 SRV 0 0 1688 kms.lab.test\ndnscmd dc01 /RecordAdd lab.test kms 600 A 192.0.2.7\n',
    );
  });

  it('the record it prints is the one the responder serves', async () => {
    const rec = resolveDnsRecord({
      domain: DOMAIN,
      host: 'kms1',
      port: 1700,
      priority: 3,
      weight: 7,
      ttl: 120,
      addresses: ['127.0.0.9'],
    });
    const r = await start({
      ttl: rec.ttl,
      targets: [
        {
          host: rec.host,
          port: rec.port,
          priority: rec.priority,
          weight: rec.weight,
          addresses: rec.addresses,
        },
      ],
    });
    const { p } = await udp(r, query(rec.name, 'SRV'));
    const a = p.answers?.[0] as dnsPacket.SrvAnswer;
    const zoneLine = (
      await cli([
        '--domain',
        DOMAIN,
        '--host',
        'kms1',
        '--port',
        '1700',
        '--priority',
        '3',
        '--weight',
        '7',
        '--ttl',
        '120',
        '--format',
        'zone',
      ])
    ).trim();
    expect(zoneLine).toBe(
      `${a.name}. ${a.ttl} IN SRV ${a.data.priority} ${a.data.weight} ${a.data.port} ${a.data.target}.`,
    );
  });

  it('refuses bad values', async () => {
    await expect(cli(['--domain', 'lab.test', '--host', '10.0.0.1'])).rejects.toThrow(/address/);
    await expect(cli(['--domain', 'lab..test', '--host', 'kms'])).rejects.toThrow(/not valid/);
    await expect(cli(['--domain', 'lab.test', '--host', 'kms', '--port', '0'])).rejects.toThrow(/--port/);
    await expect(cli(['--domain', 'lab.test', '--host', 'kms', '--weight', 'x'])).rejects.toThrow(/--weight/);
    await expect(cli(['--domain', 'lab.test', '--host', 'kms', '--format', 'xml'])).rejects.toThrow(
      /--format/,
    );
    await expect(cli(['--host', 'kms'])).rejects.toThrow(/domain/);
  });

  it('defaults the host to this machine under the domain', async () => {
    const out = await cli(['--domain', 'lab.test', '--format', 'zone']);
    expect(out).toMatch(/^_vlmcs\._tcp\.lab\.test\. 600 IN SRV 0 0 1688 [a-z0-9_-]+(\.[a-z0-9_-]+)*\.$/m);
  });
});
