/**
 * `kmslab status` against the real binary (dist/cli/bin.js; `npm run build` refreshes it): a host on a
 * SQLite file in a temporary directory, ephemeral ports, a control token; requests of several
 * LicenseStatus values and one the host refuses; `kmslab status` prints them as `slmgr /dlv` does, and
 * after a restart on the same file it prints the same counters (docs/host.md section 9).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HResult } from '../../src/kms/hresult.js';
import { RawKmsClient } from '../helpers/raw-client.js';
import { type Finished, runProcess, startServeProcess } from '../helpers/serve-process.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = path.join(ROOT, 'dist/cli/bin.js');
const dir = mkdtempSync(path.join(tmpdir(), 'kmslab-status-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

interface Host {
  proc: ChildProcess;
  kms: number;
  control: string;
  exited: Promise<string>;
}

/** Starts `kmslab serve` and resolves with its addresses from the start line. */
async function startHost(args: string[]): Promise<Host> {
  const { proc, start, exited } = await startServeProcess(['serve', ...args], {
    cwd: dir,
    command: process.execPath,
    prefix: [BIN],
    track: (p) => children.push(p),
  });
  const kms = Number(
    String((start['listen'] as string[])[0])
      .split(':')
      .pop(),
  );
  return { proc, kms, control: String(start['control']), exited };
}

/** Runs `kmslab status …` to its end. */
function status(args: string[]): Promise<Finished> {
  return runProcess(process.execPath, [BIN, 'status', ...args], { cwd: dir, track: (p) => children.push(p) });
}

const CUMULATIVE = [
  'Key Management Service cumulative requests received from clients',
  '    Total requests received: 6',
  '    Failed requests received: 1',
  '    Requests with License Status Unlicensed: 1',
  '    Requests with License Status Licensed: 1',
  '    Requests with License Status Initial grace period: 3',
  '    Requests with License Status License expired or Hardware out of tolerance: 0',
  '    Requests with License Status Non-genuine grace period: 0',
  '    Requests with License Status Notification: 1',
  '    Requests with License Status Extended grace period: 0',
  '',
].join('\n');

describe('kmslab status over a real host', () => {
  it('prints the slmgr /dlv host section; the counters survive a restart on the SQLite store', async () => {
    const store = path.join(dir, 'status.sqlite');
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, 'status-test-token-0123456789\n');
    const args = [
      ...['--store', store, '--listen', '127.0.0.1:0', '--control', '127.0.0.1:0'],
      ...['--control-token', tokenFile, '--clock', 'manual', '--seed', '15', '--max-clock-skew', '4h'],
    ];
    const h = await startHost(args);
    // The manual clock starts at 2026-01-01, the raw client's default ClientTime.
    const c = await RawKmsClient.connect({ host: '127.0.0.1', port: h.kms }, { seed: 'status' });
    try {
      for (const licenseStatus of [2, 2, 2, 1, 0]) {
        expect((await c.activate({ licenseStatus })).hresult).toBe(HResult.S_OK);
      }
    } finally {
      c.close();
    }
    // A day off the host's clock: refused with 0xC004F06C, a failed request of LicenseStatus 5.
    const skewed = await RawKmsClient.connect(
      { host: '127.0.0.1', port: h.kms },
      { seed: 'skewed', nowMs: Date.UTC(2025, 11, 31) },
    );
    try {
      expect((await skewed.activate({ licenseStatus: 5 })).hresult).toBe(HResult.TIME_SKEW);
    } finally {
      skewed.close();
    }

    const noToken = await status(['--control', h.control]);
    expect(noToken.code).toBe(2);
    expect(noToken.stdout).toBe('');
    expect(noToken.stderr).toMatch(/^kmslab: --control .*\/status answered 401/);

    const before = await status(['--control', h.control, '--control-token', tokenFile]);
    expect(before.stderr).toBe('');
    expect(before.code).toBe(0);
    expect(before.stdout).toBe(
      [
        'Key Management Service is enabled on this machine',
        '    Current count: 5',
        `    Listening on Port: ${h.kms}`,
        '    DNS publishing disabled',
        '    KMS priority: Normal',
        '',
        CUMULATIVE,
      ].join('\n'),
    );
    const json = await status(['--control', h.control, '--control-token', tokenFile, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      KeyManagementServiceCurrentCount: 5,
      KeyManagementServiceTotalRequests: 6,
      KeyManagementServiceFailedRequests: 1,
      KeyManagementServiceOOBGraceRequests: 3,
      KeyManagementServiceNotificationRequests: 1,
    });

    process.kill(h.proc.pid!, 'SIGTERM');
    expect(await h.exited).toBe('0');

    const again = await startHost(args);
    const after = await status(['--control', again.control, '--control-token', tokenFile]);
    expect(after.code).toBe(0);
    expect(after.stdout).toContain('    Current count: 5\n');
    expect(after.stdout.endsWith(`\n${CUMULATIVE}`)).toBe(true);
    process.kill(again.proc.pid!, 'SIGTERM');
    expect(await again.exited).toBe('0');
  });

  it('no host at the address: exit 3, one line', async () => {
    // A port the kernel just gave out and that was closed again: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const r = await status(['--control', `127.0.0.1:${port}`]);
    expect(r.code).toBe(3);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      new RegExp(`^kmslab: --control 127\\.0\\.0\\.1:${port}: cannot read /status: ECONNREFUSED`),
    );
  });
});
