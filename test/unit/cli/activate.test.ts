import { Command, CommanderError } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { registerActivate } from '../../../src/cli/activate.js';
import { parseHostPort } from '../../../src/client/client.js';
import { startDns } from '../client/dns-responder.js';
import { type FakeHost, MINI_EPID, type MiniHostOptions, miniHost } from '../client/fake-host.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
  process.exitCode = undefined;
});

async function host(opts: MiniHostOptions = {}): Promise<FakeHost> {
  const h = await miniHost(opts);
  cleanup.push(() => h.close());
  return h;
}

/** Runs `kmslab activate ...args` in-process; returns stdout, stderr and the exit code it set. */
async function run(...args: string[]): Promise<{ out: string; err: string; code: number | undefined }> {
  let out = '';
  let err = '';
  const program = new Command('kmslab')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  registerActivate(program);
  process.exitCode = undefined;
  await program.parseAsync(['activate', ...args], { from: 'user' });
  const code = process.exitCode === undefined ? undefined : Number(process.exitCode);
  process.exitCode = undefined;
  return { out, err, code };
}

async function usageError(...args: string[]): Promise<CommanderError> {
  try {
    await run(...args);
  } catch (e) {
    expect(e).toBeInstanceOf(CommanderError);
    return e as CommanderError;
  }
  throw new Error(`expected a usage error for: ${args.join(' ')}`);
}

const CMID = '11111111-2222-4333-8444-555555555555';

function lines(out: string): Record<string, unknown>[] {
  return out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('kmslab activate --json', () => {
  it('prints one verified JSON line and exits 0 when activated', async () => {
    const h = await host();
    const { out, code } = await run(
      `127.0.0.1:${h.port}`,
      '--json',
      '--product',
      'Windows 10 Enterprise',
      '--cmid',
      CMID,
      '--seed',
      '1',
    );
    const [j, ...more] = lines(out);
    expect(more).toHaveLength(0);
    expect(j).toMatchObject({
      host: '127.0.0.1',
      port: h.port,
      protocol: 6,
      epid: MINI_EPID,
      hwid: '3A1C049600B60076',
      count: 50,
      requiredCount: 25,
      activationInterval: 120,
      renewalInterval: 10080,
      activated: true,
      hresult: '0x00000000',
      cmid: CMID,
      ndr: 'ndr32',
      callId: 2,
    });
    expect(typeof j!['hresultText']).toBe('string');
    expect(j!['error']).toBeUndefined();
    expect(code).toBe(0);
  });

  it('count below the required count: activated false, 0xC004F038 explained, exit 2', async () => {
    const h = await host({ count: 4 });
    const { out, code } = await run(`127.0.0.1:${h.port}`, '--json', '--seed', '2', '--protocol', '4');
    const [j] = lines(out);
    expect(j).toMatchObject({ protocol: 4, activated: false, hresult: '0xC004F038', count: 4 });
    expect(String(j!['hresultText'])).toMatch(/insufficient/);
    expect(code).toBe(2);
  });

  it('an error HRESULT from the host: exit 2 with the HRESULT in words', async () => {
    const h = await host({ hresult: 0xc004f042 });
    const { out, code } = await run(`127.0.0.1:${h.port}`, '--json', '--seed', '3');
    expect(lines(out)[0]).toMatchObject({ activated: false, hresult: '0xC004F042', epid: null });
    expect(String(lines(out)[0]!['hresultText'])).toMatch(/refused this product/);
    expect(code).toBe(2);
  });

  it('a verification failure: exit 3 with the ProtocolError code', async () => {
    const h = await host({ tamper: 'mac' });
    const { out, code } = await run(`127.0.0.1:${h.port}`, '--json', '--seed', '4', '--protocol', '4');
    expect(lines(out)[0]).toMatchObject({
      activated: false,
      hresult: '0xC004F074',
      error: { kind: 'verification', code: 'BAD_MAC' },
    });
    expect(code).toBe(3);
  });

  it('--requests 3 on one connection, then --new-connection', async () => {
    const h = await host();
    const one = await run(`127.0.0.1:${h.port}`, '--json', '--requests', '3', '--seed', '5');
    expect(lines(one.out).map((j) => [j['callId'], j['ndr']])).toEqual([
      [2, 'ndr32'],
      [3, 'ndr64'],
      [4, 'ndr64'],
    ]);
    expect(h.received).toHaveLength(1);
    const many = await run(
      `127.0.0.1:${h.port}`,
      '--json',
      '--requests',
      '3',
      '--new-connection',
      '--seed',
      '5',
    );
    expect(lines(many.out).map((j) => j['ndr'])).toEqual(['ndr32', 'ndr32', 'ndr32']);
    expect(h.received).toHaveLength(4);
    // Same seed, same random CMID.
    expect(new Set([...lines(one.out), ...lines(many.out)].map((j) => j['cmid'])).size).toBe(1);
  });

  it('--no-ndr64 --no-btfn --no-multiplex: a one-context bind with flags 0x03', async () => {
    const h = await host();
    const { code } = await run(
      `127.0.0.1:${h.port}`,
      '--json',
      '--no-ndr64',
      '--no-btfn',
      '--no-multiplex',
      '--seed',
      '6',
    );
    expect(code).toBe(0);
    const bind = h.received[0]![0]!;
    expect([bind[2], bind[3], bind[24]]).toEqual([11, 0x03, 1]);
  });

  it('--discover finds the host through an SRV record at --dns-server', async () => {
    const h = await host();
    const dns = await startDns({
      srv: { '_vlmcs._tcp.lab.test': [{ priority: 0, weight: 0, port: h.port, target: 'kms.lab.test' }] },
      a: { 'kms.lab.test': ['127.0.0.1'] },
    });
    cleanup.push(() => dns.close());
    const { out, code } = await run(
      '--discover',
      'lab.test',
      '--dns-server',
      dns.server,
      '--json',
      '--seed',
      '7',
    );
    expect(lines(out)[0]).toMatchObject({ host: '127.0.0.1', port: h.port, activated: true });
    expect(code).toBe(0);
  });
});

describe('kmslab activate, human output', () => {
  it('one readable block per request', async () => {
    const h = await host();
    const { out, code } = await run(
      `127.0.0.1:${h.port}`,
      '--product',
      'Windows 10 Enterprise',
      '--requests',
      '2',
      '--seed',
      '8',
    );
    expect(out).toMatch(/Product: Windows 10\/11 Enterprise/);
    expect(out).toMatch(/Request 1 of 2: KMS V6 to 127\.0\.0\.1:\d+, NDR32, call_id 2/);
    expect(out).toMatch(/Request 2 of 2: KMS V6 to 127\.0\.0\.1:\d+, NDR64, call_id 3/);
    expect(out).toContain(`ePID:                 ${MINI_EPID}`);
    expect(out).toMatch(/Count: +50 \(required 25\)/);
    expect(out).toMatch(/Renewal interval: +10080 minutes \(1w\)/);
    expect(out).toMatch(/Result: +activated/);
    expect(code).toBe(0);
  });

  it('a failure names kind, code and reason', async () => {
    const h = await host({ hresult: 0xc004f06c });
    const { out, code } = await run(`127.0.0.1:${h.port}`, '--seed', '9');
    expect(out).toMatch(/not activated, HRESULT 0xC004F06C: .*clock/);
    expect(code).toBe(2);
  });

  it('the help text lists the options and documents the exit codes', async () => {
    let out = '';
    const program = new Command('kmslab').exitOverride().configureOutput({ writeOut: (s) => (out += s) });
    registerActivate(program);
    await expect(program.parseAsync(['activate', '--help'], { from: 'user' })).rejects.toMatchObject({
      code: 'commander.helpDisplayed',
    });
    for (const o of ['--product', '--sku', '--app', '--kms-id', '--protocol', '--cmid', '--previous-cmid']) {
      expect(out).toContain(o);
    }
    for (const o of [
      '--workstation',
      '--required-count',
      '--license-status',
      '--vm',
      '--no-ndr64',
      '--no-btfn',
    ]) {
      expect(out).toContain(o);
    }
    for (const o of [
      '--no-multiplex',
      '--requests',
      '--new-connection',
      '--timeout',
      '--json',
      '--discover',
    ]) {
      expect(out).toContain(o);
    }
    expect(out).toContain('--dns-server');
    expect(out).toContain('--seed');
    expect(out).toMatch(/exit codes mean for activate:\n\s+0 .*activated/);
    expect(out).toMatch(/\n\s+2 .*error\n?\s*HRESULT|\n\s+2 .*HRESULT/);
    expect(out).toMatch(/\n\s+3 .*transport/);
  });
});

describe('kmslab activate, bad arguments', () => {
  it('rejects a bad protocol, GUID, count or timeout with a clear message', async () => {
    expect((await usageError('127.0.0.1', '--protocol', '7')).message).toMatch(/4, 5 or 6/);
    expect((await usageError('127.0.0.1', '--cmid', 'nope')).message).toMatch(/not a GUID/);
    expect((await usageError('127.0.0.1', '--requests', '0')).message).toMatch(
      /--requests must be an integer/,
    );
    expect((await usageError('127.0.0.1', '--timeout', 'soon')).message).toMatch(/milliseconds/);
  });

  it('rejects conflicting or missing targets and unknown products', async () => {
    expect(
      (await usageError('127.0.0.1', '--product', 'Windows 10 Enterprise', '--sku', CMID)).message,
    ).toMatch(/cannot be used with/);
    expect((await usageError()).message).toMatch(/HOST\[:PORT\] or --discover/);
    expect((await usageError('127.0.0.1', '--discover', 'lab.test')).message).toMatch(/not both/);
    expect((await usageError('127.0.0.1', '--dns-server', '127.0.0.1:53')).message).toMatch(
      /only goes with --discover/,
    );
    expect((await usageError('127.0.0.1', '--product', 'Windows 99 Ultra')).message).toMatch(
      /no product named/,
    );
    expect((await usageError('127.0.0.1', '--sku', CMID)).message).toMatch(/not in the catalog/);
    expect((await usageError('[::1', '--seed', '1')).message).toMatch(/IPv6|port|host/);
    expect((await usageError('127.0.0.1:99999')).message).toMatch(/port must be 1\.\.65535/);
  });

  it('exit code 1 for usage errors', async () => {
    expect((await usageError('127.0.0.1', '--protocol', '3')).exitCode).toBe(1);
    expect((await usageError()).exitCode).toBe(1);
  });
});

describe('HOST[:PORT] parsing', () => {
  it('handles names, IPv4, bracketed and bare IPv6, and the default port', () => {
    expect(parseHostPort('kms.lab.test', 1688)).toEqual({ host: 'kms.lab.test', port: 1688 });
    expect(parseHostPort('10.0.0.1:1700', 1688)).toEqual({ host: '10.0.0.1', port: 1700 });
    expect(parseHostPort('[::1]:1688', 1)).toEqual({ host: '::1', port: 1688 });
    expect(parseHostPort('[fe80::1]', 1688)).toEqual({ host: 'fe80::1', port: 1688 });
    expect(parseHostPort('::1', 1688)).toEqual({ host: '::1', port: 1688 });
    expect(() => parseHostPort('[kms]:1', 1)).toThrow(/IPv6/);
    expect(() => parseHostPort('h:0', 1)).toThrow(/port/);
    expect(() => parseHostPort(':1688', 1)).toThrow(/no host/);
  });
});
