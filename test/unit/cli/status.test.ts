/**
 * `kmslab status`: the `slmgr /dlv` host section from a host's WMI values (golden text: slmgr.vbs's
 * own strings L_MsgKmsEnabled … L_MsgKmsRequestsWithStatusNotification, four-space indents, a blank
 * line between the blocks), the pool mapping, and the exit codes when the control API refuses or
 * does not answer (docs/cli.md, "kmslab status").
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT } from '../../../src/cli/errors.js';
import {
  formatDlvHostSection,
  type HostStatus,
  registerStatus,
  wmiForPool,
} from '../../../src/cli/status.js';
import { emptyCounters, wmiProperties } from '../../../src/host/counters.js';

function sampleStatus(): HostStatus {
  const c = { ...emptyCounters(), total: 41, failed: 3, unlicensed: 1, licensed: 20, oobGrace: 12 };
  Object.assign(c, { ootGrace: 2, nonGenuineGrace: 1, notification: 2, extendedGrace: 1 });
  return {
    pools: [
      { applicationId: '55c92734-d682-4d71-983e-d6ec3f16059f', name: 'Windows', count: 27 },
      { applicationId: '0ff1ce15-a989-479d-af46-f275c6370663', name: 'Office 2013+', count: 6 },
    ],
    requestCounters: { extendedGrace: c.extendedGrace },
    wmi: wmiProperties(c, {
      listeningPort: 1688,
      dnsPublishing: false,
      lowPriority: false,
      currentCount: 27,
      activationInterval: 120,
      renewalInterval: 10080,
    }),
  };
}

describe('formatDlvHostSection: slmgr /dlv, line for line', () => {
  it('prints the host section and the cumulative requests as slmgr.vbs does', () => {
    const s = sampleStatus();
    expect(formatDlvHostSection(s.wmi, 1)).toBe(
      [
        'Key Management Service is enabled on this machine',
        '    Current count: 27',
        '    Listening on Port: 1688',
        '    DNS publishing disabled',
        '    KMS priority: Normal',
        '',
        'Key Management Service cumulative requests received from clients',
        '    Total requests received: 41',
        '    Failed requests received: 3',
        '    Requests with License Status Unlicensed: 1',
        '    Requests with License Status Licensed: 20',
        '    Requests with License Status Initial grace period: 12',
        '    Requests with License Status License expired or Hardware out of tolerance: 2',
        '    Requests with License Status Non-genuine grace period: 1',
        '    Requests with License Status Notification: 2',
        '    Requests with License Status Extended grace period: 1',
        '',
      ].join('\n'),
    );
  });

  it('port 0 prints as 1688 (slmgr), DNS publishing and low priority as slmgr words them', () => {
    const w = {
      ...sampleStatus().wmi,
      KeyManagementServiceListeningPort: 0,
      KeyManagementServiceDnsPublishing: true,
      KeyManagementServiceLowPriority: true,
    };
    const text = formatDlvHostSection(w, 0);
    expect(text).toContain(
      '\n    Listening on Port: 1688\n    DNS publishing enabled\n    KMS priority: Low\n',
    );
  });
});

describe('wmiForPool: kmslab count pools onto slmgr current count', () => {
  it('the Windows pool by default (KeyManagementServiceCurrentCount), another by name or id', () => {
    const s = sampleStatus();
    expect(wmiForPool(s).KeyManagementServiceCurrentCount).toBe(27);
    expect(wmiForPool(s, 'office 2013+').KeyManagementServiceCurrentCount).toBe(6);
    expect(wmiForPool(s, '0FF1CE15-A989-479D-AF46-F275C6370663').KeyManagementServiceCurrentCount).toBe(6);
    // The counters are the host's one set whichever pool is shown.
    expect(wmiForPool(s, 'Office 2013+').KeyManagementServiceTotalRequests).toBe(41);
    expect(() => wmiForPool(s, 'Visio')).toThrow(/--pool: no pool "Visio"; the host has "Windows"/);
  });
});

describe('kmslab status: exit codes from the control API', () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
    process.exitCode = undefined;
  });

  async function serve(handler: http.RequestListener): Promise<string> {
    const s = http.createServer(handler);
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return `127.0.0.1:${(s.address() as AddressInfo).port}`;
  }

  async function run(...args: string[]): Promise<{ out: string; code: number; err: string }> {
    let out = '';
    const write = process.stdout.write;
    process.stdout.write = ((s: string) => {
      out += s;
      return true;
    }) as typeof process.stdout.write;
    const program = new Command('kmslab').exitOverride();
    registerStatus(program);
    process.exitCode = undefined;
    try {
      await program.parseAsync(['status', ...args], { from: 'user' });
      return { out, code: Number(process.exitCode ?? 0), err: '' };
    } catch (e) {
      return { out, code: (e as { exitCode: number }).exitCode, err: (e as Error).message };
    } finally {
      process.stdout.write = write;
    }
  }

  it('an answer: exit 0, the text or (--json) the WMI object; the token goes as a bearer', async () => {
    let auth: string | undefined;
    const where = await serve((req, res) => {
      auth = req.headers.authorization;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(sampleStatus()));
    });
    const text = await run('--control', where);
    expect(text.code).toBe(EXIT.OK);
    expect(text.out).toMatch(/^Key Management Service is enabled on this machine\n {4}Current count: 27\n/);
    expect(auth).toBeUndefined();
    process.env['KMSLAB_CONTROL_TOKEN'] = 'a-token-of-at-least-16';
    try {
      const json = await run('--control', where, '--json', '--pool', 'Office 2013+');
      expect(json.code).toBe(EXIT.OK);
      expect(JSON.parse(json.out)).toEqual({ ...sampleStatus().wmi, KeyManagementServiceCurrentCount: 6 });
      expect(auth).toBe('Bearer a-token-of-at-least-16');
    } finally {
      delete process.env['KMSLAB_CONTROL_TOKEN'];
    }
  });

  it('a refusal (401) is exit 2 with the host message; no answer or a non-kmslab answer is exit 3', async () => {
    const refusing = await serve((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"needs a token"}');
    });
    const r = await run('--control', refusing);
    expect(r).toMatchObject({ code: EXIT.REFUSED, out: '' });
    expect(r.err).toMatch(/\/status answered 401: needs a token/);

    const other = await serve((_req, res) => res.writeHead(200).end('{"hello":1}'));
    const o = await run('--control', other);
    expect(o.code).toBe(EXIT.FAILED);
    expect(o.err).toMatch(/is not a kmslab host's/);

    const closed = await serve(() => {});
    const s = servers.pop()!;
    await new Promise((r) => s.close(r));
    const c = await run('--control', closed);
    expect(c.code).toBe(EXIT.FAILED);
    expect(c.err).toMatch(/cannot read \/status: ECONNREFUSED/);

    expect((await run('--control', 'nonsense:1:2')).code).toBe(EXIT.USAGE);
    expect((await run('--control', closed, '--timeout', '0')).code).toBe(EXIT.USAGE);
  });
});
