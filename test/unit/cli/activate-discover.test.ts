/**
 * `kmslab activate --discover ... --json`: every result line carries the discovery (DNS server, SRV
 * records in the order tried, every address tried). In-process, against loopback DNS and KMS hosts.
 */
import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { registerActivate } from '../../../src/cli/activate.js';
import { type DnsResponder, startDns, type Zone } from '../client/dns-responder.js';
import { closedPort, type FakeHost, miniHost } from '../client/fake-host.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
  process.exitCode = undefined;
});

async function host(): Promise<FakeHost> {
  const h = await miniHost();
  cleanup.push(() => h.close());
  return h;
}

async function dns(zone: Zone): Promise<DnsResponder> {
  const d = await startDns(zone);
  cleanup.push(() => d.close());
  return d;
}

/** Runs `kmslab activate ...args` in-process; returns stdout and the exit code it set. */
async function run(...args: string[]): Promise<{ out: string; code: number | undefined }> {
  let out = '';
  const program = new Command('kmslab')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: () => {} });
  registerActivate(program);
  process.exitCode = undefined;
  await program.parseAsync(['activate', ...args], { from: 'user' });
  const code = process.exitCode === undefined ? undefined : Number(process.exitCode);
  process.exitCode = undefined;
  return { out, code };
}

function lines(out: string): Record<string, unknown>[] {
  return out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const SRV = '_vlmcs._tcp.lab.test';

describe('kmslab activate --discover --json', () => {
  it('each result line keeps its fields and adds the discovery: records and every address tried', async () => {
    const h = await host();
    const d = await dns({
      srv: {
        [SRV]: [
          { priority: 0, weight: 0, port: h.port, target: 'multi.lab.test' },
          { priority: 5, weight: 3, port: h.port, target: 'spare.lab.test' },
        ],
      },
      // 127.0.0.2 refuses (the host listens on 127.0.0.1 only); the target's second address answers.
      a: { 'multi.lab.test': ['127.0.0.2', '127.0.0.1'], 'spare.lab.test': ['127.0.0.1'] },
    });
    const { out, code } = await run(
      '--discover',
      'lab.test',
      '--dns-server',
      d.server,
      '--json',
      '--requests',
      '2',
      '--seed',
      '11',
    );
    const js = lines(out);
    expect(js).toHaveLength(2);
    expect(js.map((j) => [j['host'], j['port'], j['activated'], j['callId']])).toEqual([
      ['127.0.0.1', h.port, true, 2],
      ['127.0.0.1', h.port, true, 3],
    ]);
    const want = {
      domain: 'lab.test',
      srvName: SRV,
      dnsServer: d.server,
      records: [
        {
          priority: 0,
          weight: 0,
          port: h.port,
          target: 'multi.lab.test',
          addresses: ['127.0.0.2', '127.0.0.1'],
        },
        { priority: 5, weight: 3, port: h.port, target: 'spare.lab.test', addresses: ['127.0.0.1'] },
      ],
      attempts: [
        {
          target: 'multi.lab.test',
          host: '127.0.0.2',
          port: h.port,
          priority: 0,
          weight: 0,
          error: { kind: 'transport', code: 'CONNECTION_REFUSED' },
        },
        { target: 'multi.lab.test', host: '127.0.0.1', port: h.port, priority: 0, weight: 0 },
      ],
      host: '127.0.0.1',
      port: h.port,
    };
    for (const j of js) {
      expect(j['discovery']).toMatchObject(want);
      const attempts = (j['discovery'] as { attempts: Record<string, unknown>[] }).attempts;
      expect(attempts).toHaveLength(2);
      expect(attempts[1]).not.toHaveProperty('error');
    }
    // The result fields come first, unchanged; discovery is the last member.
    expect(Object.keys(js[0]!).at(-1)).toBe('discovery');
    expect(Object.keys(js[0]!).slice(0, 3)).toEqual(['host', 'port', 'protocol']);
    expect(code).toBe(0);
  });

  it('no address answers: the one failure line lists every attempt, host null, exit 3', async () => {
    const [p1, p2] = [await closedPort(), await closedPort()];
    const d = await dns({
      srv: {
        [SRV]: [
          { priority: 0, weight: 0, port: p1, target: 'x.lab.test' },
          { priority: 1, weight: 0, port: p2, target: 'y.lab.test' },
        ],
      },
      a: { 'x.lab.test': ['127.0.0.2', '127.0.0.1'], 'y.lab.test': ['127.0.0.1'] },
    });
    const { out, code } = await run(
      '--discover',
      'lab.test',
      '--dns-server',
      d.server,
      '--json',
      '--seed',
      '12',
    );
    const js = lines(out);
    expect(js).toHaveLength(1);
    expect(js[0]).toMatchObject({ hresult: '0xC004F074', error: { code: 'NO_KMS_ANSWERED' } });
    const disc = js[0]!['discovery'] as { attempts: Record<string, unknown>[]; host: unknown; port: unknown };
    expect(
      disc.attempts.map((a) => [a['target'], a['host'], a['port'], (a['error'] as { code: string }).code]),
    ).toEqual([
      ['x.lab.test', '127.0.0.2', p1, 'CONNECTION_REFUSED'],
      ['x.lab.test', '127.0.0.1', p1, 'CONNECTION_REFUSED'],
      ['y.lab.test', '127.0.0.1', p2, 'CONNECTION_REFUSED'],
    ]);
    expect([disc.host, disc.port]).toEqual([null, null]);
    expect(code).toBe(3);
  });

  it('no SRV records: the failure line still names the DNS server asked, with empty records', async () => {
    const d = await dns({});
    const { out, code } = await run(
      '--discover',
      'lab.test',
      '--dns-server',
      d.server,
      '--json',
      '--seed',
      '13',
    );
    const [j, ...more] = lines(out);
    expect(more).toHaveLength(0);
    expect(j).toMatchObject({
      error: { code: 'NO_SRV_RECORDS' },
      discovery: { dnsServer: d.server, records: [], attempts: [], host: null, port: null },
    });
    expect(code).toBe(3);
  });

  it('without --discover the lines have no discovery member', async () => {
    const h = await host();
    const { out } = await run(`127.0.0.1:${h.port}`, '--json', '--seed', '14');
    expect(lines(out)[0]).toMatchObject({ host: '127.0.0.1', activated: true });
    expect(lines(out)[0]).not.toHaveProperty('discovery');
  });

  it('the help text describes the discovery member of --json and per-address failover', async () => {
    let out = '';
    const program = new Command('kmslab').exitOverride().configureOutput({ writeOut: (s) => (out += s) });
    registerActivate(program);
    await expect(program.parseAsync(['activate', '--help'], { from: 'user' })).rejects.toMatchObject({
      code: 'commander.helpDisplayed',
    });
    expect(out).toMatch(
      /With --discover every line also has discovery \{domain, srvName, dnsServer, records/,
    );
    expect(out).toMatch(/every address of a target \(A and AAAA\) before\s+the next target/);
  });
});
