import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  activateWithDiscovery,
  defaultDnsServer,
  discoverKmsHosts,
  orderSrvRecords,
  querySrv,
  type SrvRecord,
} from '../../../src/client/discover.js';
import { type Random, SeededRandom } from '../../../src/host/random.js';
import { HResult } from '../../../src/kms/hresult.js';
import { type DnsResponder, startDns } from './dns-responder.js';
import { closedPort, type FakeHost, miniHost } from './fake-host.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

async function dns(zone: Parameters<typeof startDns>[0]): Promise<DnsResponder> {
  const d = await startDns(zone);
  cleanup.push(() => d.close());
  return d;
}

async function kmsHost(): Promise<FakeHost> {
  const h = await miniHost();
  cleanup.push(() => h.close());
  return h;
}

const SRV = '_vlmcs._tcp.lab.test';

interface DualZone {
  srv: dnsPacket.SrvData[];
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
}

/**
 * A UDP-only DNS responder on 127.0.0.1 serving `_vlmcs._tcp.lab.test` SRV (no glue) and A and AAAA
 * records (dns-responder.ts serves A only). Logs "TYPE name" per query.
 */
async function dualDns(zone: DualZone): Promise<{ server: string; queries: string[] }> {
  const sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise<void>((resolve) => sock.close(() => resolve())));
  const queries: string[] = [];
  sock.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions?.[0];
    if (!question) return;
    queries.push(`${question.type} ${question.name}`);
    const name = question.name.toLowerCase();
    const answers: dnsPacket.Answer[] = [];
    let known = false;
    if (name === SRV) {
      known = true;
      if (question.type === 'SRV')
        for (const data of zone.srv) answers.push({ type: 'SRV', name: question.name, ttl: 60, data });
    }
    for (const type of ['A', 'AAAA'] as const) {
      const ips = (type === 'A' ? zone.a : zone.aaaa)?.[name];
      if (zone.a?.[name] || zone.aaaa?.[name]) known = true;
      if (question.type === type)
        for (const ip of ips ?? []) answers.push({ type, name: question.name, ttl: 60, data: ip });
    }
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3); // rcode 3: NXDOMAIN
    sock.send(
      dnsPacket.encode({ type: 'response', id: q.id ?? 0, flags, questions: [question], answers }),
      rinfo.port,
      rinfo.address,
    );
  });
  return { server: `127.0.0.1:${sock.address().port}`, queries };
}

// ---------------------------------------------------------------------------------------------------
// Ordering (RFC 2782)

/** A Random whose int() follows a script of choices; used to enumerate every path of the algorithm. */
class ScriptedRandom implements Random {
  prob = 1;
  private i = 0;
  constructor(private readonly script: { v: number; lo: number; hi: number }[]) {}
  int(lo: number, hi: number): number {
    this.prob /= hi - lo + 1;
    const c = this.script[this.i];
    this.i++;
    if (c) {
      if (c.lo !== lo || c.hi !== hi) throw new Error('script diverged');
      return c.v;
    }
    this.script.push({ v: lo, lo, hi });
    return lo;
  }
  get used(): number {
    return this.i;
  }
  bytes(): Uint8Array {
    throw new Error('not scripted');
  }
  uint32(): number {
    throw new Error('not scripted');
  }
  below(): number {
    throw new Error('not scripted');
  }
  float(): number {
    throw new Error('not scripted');
  }
  fork(): Random {
    throw new Error('not scripted');
  }
}

/** Exact distribution of orders produced by orderSrvRecords, by walking every random choice. */
function enumerate(records: SrvRecord[]): Map<string, number> {
  const dist = new Map<string, number>();
  const script: { v: number; lo: number; hi: number }[] = [];
  for (;;) {
    const r = new ScriptedRandom(script);
    const key = orderSrvRecords(records, r)
      .map((x) => x.target)
      .join(',');
    script.length = r.used;
    dist.set(key, (dist.get(key) ?? 0) + r.prob);
    while (script.length > 0 && script[script.length - 1]!.v === script[script.length - 1]!.hi) script.pop();
    if (script.length === 0) break;
    script[script.length - 1]!.v++;
  }
  return dist;
}

/**
 * The RFC 2782 model, written from the RFC text: per priority (ascending), the records left are listed
 * with weight 0 first; r is uniform in [0, sum]; the first record whose running sum ≥ r is taken. So the
 * first listed record is taken with (w + 1) / (sum + 1), any other with w / (sum + 1).
 */
function model(records: SrvRecord[]): Map<string, number> {
  const groupOrders = (left: SrvRecord[]): [string[], number][] => {
    if (left.length <= 1) return [[left.map((r) => r.target), 1]];
    const sum = left.reduce((s, r) => s + r.weight, 0);
    const out: [string[], number][] = [];
    left.forEach((rec, j) => {
      const p = (rec.weight + (j === 0 ? 1 : 0)) / (sum + 1);
      if (p === 0) return;
      for (const [tail, q] of groupOrders(left.filter((_, k) => k !== j)))
        out.push([[rec.target, ...tail], p * q]);
    });
    return out;
  };
  let acc: [string[], number][] = [[[], 1]];
  for (const prio of [...new Set(records.map((r) => r.priority))].sort((a, b) => a - b)) {
    const g = records.filter((r) => r.priority === prio);
    const listed = [...g.filter((r) => r.weight === 0), ...g.filter((r) => r.weight > 0)];
    const orders = groupOrders(listed);
    acc = acc.flatMap(([pre, p]) => orders.map(([o, q]): [string[], number] => [[...pre, ...o], p * q]));
  }
  const m = new Map<string, number>();
  for (const [o, p] of acc) m.set(o.join(','), (m.get(o.join(',')) ?? 0) + p);
  return m;
}

const recordSets = fc
  .array(fc.record({ priority: fc.integer({ min: 0, max: 2 }), weight: fc.integer({ min: 0, max: 3 }) }), {
    minLength: 1,
    maxLength: 5,
  })
  .map((rs) => rs.map((r, i): SrvRecord => ({ ...r, port: 1688, target: `t${i}` })));

describe('orderSrvRecords (RFC 2782)', () => {
  it('lower priority always comes first, and every record appears once', () => {
    fc.assert(
      fc.property(recordSets, fc.integer(), (recs, seed) => {
        const out = orderSrvRecords(recs, new SeededRandom(seed));
        expect(out.map((r) => r.target).sort()).toEqual(recs.map((r) => r.target).sort());
        for (let i = 1; i < out.length; i++)
          expect(out[i]!.priority).toBeGreaterThanOrEqual(out[i - 1]!.priority);
      }),
      { numRuns: 200 },
    );
  });

  it('within a priority, every order has exactly the probability the RFC gives it (so the right support)', () => {
    fc.assert(
      fc.property(recordSets, (recs) => {
        const got = enumerate(recs);
        const want = model(recs);
        expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
        for (const [k, p] of want) expect(got.get(k)).toBeCloseTo(p, 12);
      }),
      { numRuns: 80 },
    );
  });

  it('weights 0, 3, 1: first pick is zero 1/5, heavy 3/5, light 1/5 (weight 0 can still come first)', () => {
    const recs: SrvRecord[] = [
      { priority: 0, weight: 0, port: 1, target: 'zero' },
      { priority: 0, weight: 3, port: 1, target: 'heavy' },
      { priority: 0, weight: 1, port: 1, target: 'light' },
    ];
    const d = enumerate(recs);
    const first = (t: string) => [...d].filter(([k]) => k.startsWith(t)).reduce((s, [, p]) => s + p, 0);
    expect(first('zero')).toBeCloseTo(1 / 5, 12);
    expect(first('heavy')).toBeCloseTo(3 / 5, 12);
    expect(first('light')).toBeCloseTo(1 / 5, 12);
  });
});

// ---------------------------------------------------------------------------------------------------
// DNS over the wire

describe('SRV queries', () => {
  it('reads the SRV records over UDP, then A records of the targets from the same server', async () => {
    const d = await dns({
      srv: {
        [SRV]: [
          { priority: 10, weight: 0, port: 1688, target: 'b.lab.test' },
          { priority: 0, weight: 5, port: 1700, target: 'a.lab.test' },
        ],
      },
      a: { 'a.lab.test': ['127.0.0.1'], 'b.lab.test': ['127.0.0.2'] },
    });
    const recs = await discoverKmsHosts('lab.test', {
      dnsServer: d.server,
      random: new SeededRandom(1),
      timeoutMs: 5000,
    });
    expect(recs.map((r) => [r.target, r.port, r.addresses])).toEqual([
      ['a.lab.test', 1700, ['127.0.0.1']],
      ['b.lab.test', 1688, ['127.0.0.2']],
    ]);
    expect(d.queries.map((q) => `${q.type} ${q.name} ${q.via}`)).toEqual([
      `SRV ${SRV} udp`,
      'A a.lab.test udp',
      'AAAA a.lab.test udp',
      'A b.lab.test udp',
      'AAAA b.lab.test udp',
    ]);
  });

  it('asks A and AAAA of each target and keeps both families, IPv4 first', async () => {
    const d = await dualDns({
      srv: [{ priority: 0, weight: 0, port: 1688, target: 'kms.lab.test' }],
      a: { 'kms.lab.test': ['127.0.0.3', '127.0.0.4'] },
      aaaa: { 'kms.lab.test': ['::1', 'fd00::4'] },
    });
    const recs = await discoverKmsHosts('lab.test', { dnsServer: d.server, random: new SeededRandom(1) });
    expect(recs[0]!.addresses).toEqual(['127.0.0.3', '127.0.0.4', '::1', 'fd00::4']);
    expect(d.queries).toEqual([`SRV ${SRV}`, 'A kms.lab.test', 'AAAA kms.lab.test']);
  });

  it('a target with AAAA records only gets its IPv6 addresses', async () => {
    const d = await dualDns({
      srv: [{ priority: 0, weight: 0, port: 1688, target: 'v6.lab.test' }],
      aaaa: { 'v6.lab.test': ['::1'] },
    });
    const recs = await discoverKmsHosts('lab.test', { dnsServer: d.server, random: new SeededRandom(1) });
    expect(recs[0]!.addresses).toEqual(['::1']);
  });

  it('uses glue from the additional section, without extra queries', async () => {
    const d = await dns({
      srv: { [SRV]: [{ priority: 0, weight: 0, port: 1688, target: 'kms.lab.test' }] },
      a: { 'kms.lab.test': ['127.0.0.9'] },
      glue: true,
    });
    const recs = await discoverKmsHosts('lab.test', { dnsServer: d.server, random: new SeededRandom(1) });
    expect(recs[0]!.addresses).toEqual(['127.0.0.9']);
    expect(d.queries).toHaveLength(1);
  });

  it('falls back to TCP when the UDP answer is truncated', async () => {
    const d = await dns({
      srv: { [SRV]: [{ priority: 0, weight: 0, port: 1688, target: 'kms.lab.test' }] },
      truncateUdp: true,
    });
    const recs = await querySrv(SRV, { dnsServer: d.server, random: new SeededRandom(2), timeoutMs: 5000 });
    expect(recs).toEqual([{ priority: 0, weight: 0, port: 1688, target: 'kms.lab.test' }]);
    expect(d.queries.map((q) => q.via)).toEqual(['udp', 'tcp']);
  });

  it('NXDOMAIN gives no records', async () => {
    const d = await dns({});
    expect(
      await querySrv('_vlmcs._tcp.nowhere.test', { dnsServer: d.server, random: new SeededRandom(3) }),
    ).toEqual([]);
  });

  it('the default DNS server is the first nameserver of resolv.conf', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmslab-resolv-'));
    const f = join(dir, 'resolv.conf');
    writeFileSync(f, '# comment\nsearch lab.test\nnameserver 10.0.0.53\nnameserver 10.0.0.54\n');
    expect(defaultDnsServer(f)).toEqual({ host: '10.0.0.53', port: 53 });
    writeFileSync(f, 'search lab.test\n');
    expect(() => defaultDnsServer(f)).toThrow(/no nameserver/);
  });
});

describe('activateWithDiscovery', () => {
  it('fails over from a target that refuses the connection to the next one, which answers', async () => {
    const dead = await closedPort();
    const live = await kmsHost();
    const d = await dns({
      srv: {
        [SRV]: [
          { priority: 0, weight: 10, port: dead, target: 'dead.lab.test' },
          { priority: 5, weight: 0, port: live.port, target: 'live.lab.test' },
        ],
      },
      a: { 'dead.lab.test': ['127.0.0.1'], 'live.lab.test': ['127.0.0.1'] },
    });
    const out = await activateWithDiscovery({
      domain: 'lab.test',
      dnsServer: d.server,
      product: 'Windows 10 Enterprise',
      random: new SeededRandom(7),
      timeoutMs: 5000,
      requests: 2,
    });
    expect(out.attempts.map((a) => [a.target, a.error?.code ?? 'ok'])).toEqual([
      ['dead.lab.test', 'CONNECTION_REFUSED'],
      ['live.lab.test', 'ok'],
    ]);
    expect(out.port).toBe(live.port);
    expect(out.results).toHaveLength(2);
    for (const r of out.results) {
      expect(r.error).toBeUndefined();
      expect(r.activated).toBe(true);
    }
    expect(out.results[0]!.cmid).toBe(out.results[1]!.cmid);
    expect(live.received).toHaveLength(1);
  });

  it('tries every address of a target, in order, before the next target', async () => {
    const live = await kmsHost();
    const next = await kmsHost();
    const d = await dns({
      srv: {
        [SRV]: [
          { priority: 0, weight: 0, port: live.port, target: 'multi.lab.test' },
          { priority: 1, weight: 0, port: next.port, target: 'next.lab.test' },
        ],
      },
      // Nothing listens on 127.0.0.2 (the hosts bind 127.0.0.1 only): that address refuses.
      a: { 'multi.lab.test': ['127.0.0.2', '127.0.0.1'], 'next.lab.test': ['127.0.0.1'] },
    });
    const out = await activateWithDiscovery({
      domain: 'lab.test',
      dnsServer: d.server,
      random: new SeededRandom(7),
      timeoutMs: 5000,
    });
    expect(out.dnsServer).toBe(d.server);
    expect(out.records.map((r) => [r.target, r.addresses])).toEqual([
      ['multi.lab.test', ['127.0.0.2', '127.0.0.1']],
      ['next.lab.test', ['127.0.0.1']],
    ]);
    expect(out.attempts.map((a) => [a.target, a.host, a.port, a.error?.code ?? 'ok'])).toEqual([
      ['multi.lab.test', '127.0.0.2', live.port, 'CONNECTION_REFUSED'],
      ['multi.lab.test', '127.0.0.1', live.port, 'ok'],
    ]);
    expect([out.host, out.port]).toEqual(['127.0.0.1', live.port]);
    expect(out.results[0]).toMatchObject({ host: '127.0.0.1', port: live.port, activated: true });
    expect(live.received).toHaveLength(1);
    expect(next.received).toHaveLength(0);
  });

  it('tries the AAAA addresses of a target too, then fails over to the next target', async () => {
    const live = await kmsHost();
    const d = await dualDns({
      srv: [
        { priority: 0, weight: 0, port: live.port, target: 'dual.lab.test' },
        { priority: 1, weight: 0, port: live.port, target: 'v4.lab.test' },
      ],
      // 127.0.0.2 and ::1 both refuse: the host listens on 127.0.0.1 only.
      a: { 'dual.lab.test': ['127.0.0.2'], 'v4.lab.test': ['127.0.0.1'] },
      aaaa: { 'dual.lab.test': ['::1'] },
    });
    const out = await activateWithDiscovery({
      domain: 'lab.test',
      dnsServer: d.server,
      random: new SeededRandom(3),
      timeoutMs: 5000,
    });
    expect(out.attempts.map((a) => [a.target, a.host, a.error?.code ?? 'ok'])).toEqual([
      ['dual.lab.test', '127.0.0.2', 'CONNECTION_REFUSED'],
      ['dual.lab.test', '::1', 'CONNECTION_REFUSED'],
      ['v4.lab.test', '127.0.0.1', 'ok'],
    ]);
    expect(out.results[0]).toMatchObject({ host: '127.0.0.1', activated: true });
  });

  it('a target the DNS server has no address for goes to the system resolver (all its addresses)', async () => {
    const live = await kmsHost();
    const d = await dns({
      srv: { [SRV]: [{ priority: 0, weight: 0, port: live.port, target: 'localhost' }] },
    });
    const out = await activateWithDiscovery({
      domain: 'lab.test',
      dnsServer: d.server,
      random: new SeededRandom(4),
      timeoutMs: 5000,
    });
    expect(out.records[0]!.addresses).toBeUndefined();
    expect(d.queries.map((q) => `${q.type} ${q.name}`)).toEqual([
      `SRV ${SRV}`,
      'A localhost',
      'AAAA localhost',
    ]);
    // What this machine's resolver gives for localhost, in its order, up to 127.0.0.1 (the listener).
    const system = [...new Set((await lookup('localhost', { all: true })).map((a) => a.address))];
    const upTo = system.slice(0, system.indexOf('127.0.0.1') + 1);
    expect(upTo).toContain('127.0.0.1');
    expect(out.attempts.map((a) => [a.host, a.error ? 'refused' : 'ok'])).toEqual(
      upTo.map((ip) => [ip, ip === '127.0.0.1' ? 'ok' : 'refused']),
    );
    expect(out.results[0]).toMatchObject({ host: '127.0.0.1', port: live.port, activated: true });
  });

  it.each([
    ['an error HRESULT', { hresult: 0xc004f042 }, { hresult: 0xc004f042, activated: false }],
    ['a failed check', { tamper: 'mac' as const }, { error: { kind: 'verification', code: 'BAD_MAC' } }],
  ])('%s from a host that bound is its result: no failover', async (_what, hostOpts, want) => {
    const bad = await miniHost(hostOpts);
    cleanup.push(() => bad.close());
    const good = await kmsHost();
    const d = await dns({
      srv: {
        [SRV]: [
          { priority: 0, weight: 0, port: bad.port, target: 'bad.lab.test' },
          { priority: 1, weight: 0, port: good.port, target: 'good.lab.test' },
        ],
      },
      a: { 'bad.lab.test': ['127.0.0.1', '127.0.0.2'], 'good.lab.test': ['127.0.0.1'] },
    });
    const out = await activateWithDiscovery({
      domain: 'lab.test',
      dnsServer: d.server,
      protocol: 4,
      random: new SeededRandom(5),
      timeoutMs: 5000,
    });
    expect(out.attempts.map((a) => [a.target, a.error?.code ?? 'ok'])).toEqual([['bad.lab.test', 'ok']]);
    expect(out.port).toBe(bad.port);
    expect(out.results[0]).toMatchObject(want);
    expect(bad.received).toHaveLength(1);
    expect(good.received).toHaveLength(0);
  });

  it('no target answers → one failure with 0xC004F074 listing the attempts', async () => {
    const [p1, p2] = [await closedPort(), await closedPort()];
    const d = await dns({
      srv: {
        [SRV]: [
          { priority: 0, weight: 0, port: p1, target: 'x.lab.test' },
          { priority: 1, weight: 0, port: p2, target: 'y.lab.test' },
        ],
      },
      a: { 'x.lab.test': ['127.0.0.1'], 'y.lab.test': ['127.0.0.1'] },
    });
    const out = await activateWithDiscovery({
      domain: 'lab.test',
      dnsServer: d.server,
      random: new SeededRandom(1),
    });
    expect(out.host).toBeNull();
    expect(out.results).toHaveLength(1);
    expect(out.results[0]).toMatchObject({ hresult: HResult.NO_KMS, activated: false });
    expect(out.results[0]!.error).toMatchObject({ kind: 'transport', code: 'NO_KMS_ANSWERED' });
    expect(out.results[0]!.error!.message).toContain(`127.0.0.1:${p1}`);
    expect(out.results[0]!.error!.message).toContain(`127.0.0.1:${p2}`);
  });

  it('no SRV records → 0xC004F074 (NO_SRV_RECORDS)', async () => {
    const d = await dns({});
    const out = await activateWithDiscovery({
      domain: 'lab.test',
      dnsServer: d.server,
      random: new SeededRandom(1),
    });
    expect(out.results[0]).toMatchObject({ hresult: HResult.NO_KMS, error: { code: 'NO_SRV_RECORDS' } });
  });

  it('a DNS server that does not answer → 0xC004F074 (DNS_FAILURE) after the timeout', async () => {
    const silent = await closedPort();
    const out = await activateWithDiscovery({
      domain: 'lab.test',
      dnsServer: `127.0.0.1:${silent}`,
      random: new SeededRandom(1),
      timeoutMs: 150,
    });
    expect(out.results[0]).toMatchObject({ hresult: HResult.NO_KMS, error: { code: 'DNS_FAILURE' } });
  });
});
