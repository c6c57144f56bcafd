/**
 * The real `kmslab` binary (dist/cli/bin.js, as `npm start` and `npx kmslab` run it; `npm run build`
 * refreshes it) in child processes: every bad input is one line on stderr naming the flag or key and
 * the value, with the documented exit code; `serve` starts everything or nothing; SIGTERM to the
 * host, to `npm start` or to a shell parent stops the host cleanly; a closed stdout exits 0 quietly.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HResult } from '../../src/kms/hresult.js';
import { RawKmsClient } from '../helpers/raw-client.js';
import { type Finished, runProcess, type StartedHost, startServeProcess } from '../helpers/serve-process.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = path.join(ROOT, 'dist/cli/bin.js');
const dir = mkdtempSync(path.join(tmpdir(), 'kmslab-bin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Runs the binary to its end (a guard of 20 s against a hang, which is itself a failure). */
function kmslab(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 20_000,
    input: input ?? '',
    env: { ...process.env, KMSLAB_V8_TUNING: '0' },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** One line on stderr, starting `kmslab: `, no stack trace. */
function expectOneLineError(r: ReturnType<typeof kmslab>, code: number, re: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.stderr).toMatch(re);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.status).toBe(code);
}

const MEM = ['--store', 'memory', '--listen', '127.0.0.1:0'];

describe('kmslab serve: every bad flag value is one line naming the flag, exit 1, nothing started', () => {
  const cases: [string[], RegExp][] = [
    [['--clock', 'sundial'], /^kmslab: --clock: one of system, manual, got "sundial"$/m],
    [['--durability', 'maybe'], /^kmslab: --durability: one of normal, full, got "maybe"$/m],
    [['--log-level', 'loud'], /^kmslab: --log-level: one of fatal, .*silent, got "loud"$/m],
    [['--max-clock-skew', '-4h'], /^kmslab: --max-clock-skew: a duration ≥ 0 .*got "-4h"$/m],
    [['--max-connections', 'many'], /^kmslab: --max-connections: an integer ≥ 1, got "many"$/m],
    [['--idle-timeout', 'soon'], /^kmslab: --idle-timeout: a duration .*got "soon"$/m],
    [['--listen', 'garbage'], /^kmslab: --listen: "garbage" is not an IP address/m],
    [['--listen', ':'], /^kmslab: --listen: HOST:PORT, got ":"$/m],
    [['--listen', '127.0.0.1:'], /^kmslab: --listen: "127.0.0.1:" has no port/m],
    [['--control', '127.0.0.1:99999'], /^kmslab: --control: .*port must be/m],
    [['--domain', 'lab.test'], /^kmslab: --domain only goes with --dns/m],
    [['--dns', '127.0.0.1:0'], /^kmslab: --dns needs --domain/m],
    [['--epid', 'nonsense'], /^kmslab: --epid: GROUP=EPID .*got "nonsense"$/m],
    [['--hwid', 'xyz'], /^kmslab: --hwid: 16 hex digits .*got "xyz"$/m],
    [['--activation-interval', '10s'], /^kmslab: --activation-interval: an interval of at least 1 minute/m],
    [['--bogus-flag'], /unknown option '--bogus-flag'/],
  ];
  for (const [args, re] of cases) {
    it(args.join(' '), () => {
      const r = kmslab(['serve', ...MEM, ...args]);
      expect(r.stdout).toBe(''); // no start line: nothing was started
      if (args[0] === '--bogus-flag') {
        expect(r.stderr).toMatch(re);
        expect(r.status).toBe(1);
      } else expectOneLineError(r, 1, re);
    });
  }

  it('the same --listen twice, and --control equal to --listen', () => {
    expectOneLineError(
      kmslab(['serve', '--store', 'memory', '--listen', '127.0.0.1:7', '--listen', '127.0.0.1:7']),
      1,
      /^kmslab: --listen: 127\.0\.0\.1:7 is given twice$/m,
    );
    expectOneLineError(
      kmslab(['serve', '--store', 'memory', '--listen', '127.0.0.1:7', '--control', '127.0.0.1:7']),
      1,
      /^kmslab: --control: 127\.0\.0\.1:7 is also a --listen address/m,
    );
  });
});

describe('kmslab serve --config: the file is checked like the flags, naming its keys', () => {
  const config = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  it('an unknown key is an error with a suggestion', () => {
    const f = config('typo.json', '{"refuseUnknwn": true}');
    expectOneLineError(
      kmslab(['serve', ...MEM, '--config', f]),
      1,
      /typo\.json: refuseUnknwn: unknown setting \(did you mean "refuseUnknown"\?\)$/m,
    );
  });
  it('a string where a list belongs, a bad value, a list as the whole file, bad YAML', () => {
    expectOneLineError(
      kmslab(['serve', ...MEM, '--config', config('epid.yaml', 'epid: Windows=1\n')]),
      1,
      /epid\.yaml: epid: a list .*got "Windows=1"$/m,
    );
    expectOneLineError(
      kmslab(['serve', ...MEM, '--config', config('clock.yaml', 'clock: sundial\n')]),
      1,
      /clock\.yaml: clock: one of system, manual, got "sundial"$/m,
    );
    expectOneLineError(
      kmslab(['serve', ...MEM, '--config', config('list.json', '[1,2]')]),
      1,
      /list\.json: an object of settings .*got \[1,2\]$/m,
    );
    expectOneLineError(
      kmslab(['serve', ...MEM, '--config', config('bad.json', '{')]),
      1,
      /bad\.json: not valid JSON/m,
    );
    expectOneLineError(
      kmslab(['serve', ...MEM, '--config', path.join(dir, 'none.json')]),
      1,
      /cannot read it/,
    );
  });
});

describe('kmslab serve: paths', () => {
  it('a store under a path that cannot exist, or under a file, is a one-line error', () => {
    expectOneLineError(
      kmslab(['serve', '--listen', '127.0.0.1:0', '--store', '/proc/nope/x.db']),
      1,
      /^kmslab: --store \/proc\/nope: cannot create \/proc\/nope: /m,
    );
    writeFileSync(path.join(dir, 'some-file'), 'x');
    expectOneLineError(
      kmslab(['serve', '--listen', '127.0.0.1:0', '--store', 'some-file/x.db']),
      1,
      /^kmslab: --store some-file: .*some-file is a file, not a directory$/m,
    );
    expectOneLineError(
      kmslab(['fleet', '--days', '1', '--out', '/proc/nope']),
      1,
      /^kmslab: --out \/proc\/nope/m,
    );
  });
});

describe('kmslab serve: all or nothing', () => {
  async function takenPort(): Promise<{ port: number; close: () => void }> {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { port: (s.address() as net.AddressInfo).port, close: () => s.close() };
  }

  it('a control port in use: exit 1 naming --control and the address, no start line', async () => {
    const t = await takenPort();
    try {
      const r = await runAsync(['serve', ...MEM, '--control', `127.0.0.1:${t.port}`]);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `kmslab: --control: cannot listen on 127.0.0.1:${t.port}: address already in use; nothing was started\n`,
      );
      expect(r.code).toBe(1);
    } finally {
      t.close();
    }
  });

  it('a second --listen in use, or a --dns port in use: exit 1 naming the flag', async () => {
    const t = await takenPort();
    try {
      const a = await runAsync(['serve', ...MEM, '--listen', `127.0.0.1:${t.port}`]);
      expect(a.stderr).toMatch(
        /^kmslab: --listen: cannot listen on 127\.0\.0\.1:\d+: address already in use/,
      );
      expect(a.code).toBe(1);
      const b = await runAsync(['serve', ...MEM, '--dns', `127.0.0.1:${t.port}`, '--domain', 'lab.test']);
      expect(b.stderr).toMatch(/^kmslab: --dns: cannot listen on 127\.0\.0\.1:\d+: address already in use/);
      expect(b.code).toBe(1);
    } finally {
      t.close();
    }
  });

  it('everything asked for starts, and the start line names each listener and the identity source', async () => {
    const store = path.join(dir, 'start.sqlite');
    const args = [
      'serve',
      '--store',
      store,
      '--listen',
      '127.0.0.1:0',
      '--control',
      '127.0.0.1:0',
      '--seed',
      '5',
    ];
    for (const expected of ['seed', 'store']) {
      const h = await startHost(args);
      expect(h.start['identity']).toBe(expected);
      expect(h.start['msg']).toMatch(
        expected === 'seed'
          ? /control API on 127\.0\.0\.1:\d+ \(dashboard and \/metrics; loopback only; no token\); identity from the seed 5/
          : /identity from the store/,
      );
      process.kill(h.proc.pid!, 'SIGTERM');
      expect(await h.exited).toBe('0');
    }
  });
});

/** Runs the binary asynchronously (the test process may hold a port meanwhile). */
function runAsync(args: string[]): Promise<Finished> {
  return runProcess(process.execPath, [BIN, ...args], { cwd: dir, track: (p) => children.push(p) });
}

type Started = StartedHost;

/** Spawns `command args` and waits for a kmslab start line on its stdout. */
function startHost(args: string[], command = process.execPath, prefix = [BIN]): Promise<Started> {
  return startServeProcess(args, { cwd: ROOT, command, prefix, track: (p) => children.push(p) });
}

/**
 * Resolves once every process holding the host's stdout has exited: the host inherits the pipe's write end
 * (through npm or the shell), and a process's descriptors close when it exits. An event, not a poll; the
 * test's own timeout bounds it.
 */
async function outputClosed(s: Started): Promise<void> {
  const out = s.proc.stdout!;
  if (out.closed) return;
  await new Promise((r) => out.once('close', r));
}

/** One activation against the host, committed before its answer leaves. */
async function activateOnce(port: number): Promise<string> {
  const c = await RawKmsClient.connect({ host: '127.0.0.1', port }, { seed: 'bin', nowMs: Date.now() });
  try {
    const cmid = c.body().cmid;
    const a = await c.activate({ cmid, workstation: 'bin-test' });
    expect(a.hresult).toBe(HResult.S_OK);
    return cmid;
  } finally {
    c.close();
  }
}

function storedCmids(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT cmid FROM pools').all() as { cmid: string }[]).map((r) => r.cmid);
  } finally {
    db.close();
  }
}

describe('kmslab serve: signals and parents', () => {
  const port = (s: Started) =>
    Number(
      String((s.start['listen'] as string[])[0])
        .split(':')
        .pop(),
    );

  it('SIGTERM to `npm start`: npm passes it on, the host drains, commits, exits 0, no process left', async () => {
    const store = path.join(dir, 'npm.sqlite');
    const h = await startHost(['start', '--', '--listen', '127.0.0.1:0', '--store', store], 'npm', []);
    const hostPid = h.start['pid'] as number;
    expect(hostPid).not.toBe(h.proc.pid);
    const cmid = await activateOnce(port(h));
    process.kill(h.proc.pid!, 'SIGTERM');
    await h.exited;
    await outputClosed(h);
    expect(h.lines.some((l) => String(l['msg']).startsWith('shutting down'))).toBe(true);
    expect(storedCmids(store)).toContain(cmid);
  });

  it('a parent that dies without passing the signal on (a shell, as npx runs it): the host stops the same way', async () => {
    const store = path.join(dir, 'sh.sqlite');
    // `; :` keeps the shell as the parent (no exec of the last command).
    const h = await startHost(
      ['-c', `"${process.execPath}" "${BIN}" serve --listen 127.0.0.1:0 --store "${store}"; :`],
      'sh',
      [],
    );
    const hostPid = h.start['pid'] as number;
    expect(hostPid).not.toBe(h.proc.pid);
    const cmid = await activateOnce(port(h));
    process.kill(h.proc.pid!, 'SIGKILL'); // the shell goes; the host is re-parented
    await outputClosed(h);
    expect(h.lines.some((l) => l['signal'] === 'parent exited')).toBe(true);
    expect(storedCmids(store)).toContain(cmid);
  });

  it('log lines: one time key (wall clock), hostTime for the virtual time, HRESULTs in hex; --pretty on stdout too', async () => {
    const h = await startHost(['serve', ...MEM, '--clock', 'manual']);
    const raw: string[] = [];
    h.proc.stdout!.on('data', (d: string) => raw.push(d));
    await activateOnce(port(h)).catch(() => undefined); // manual clock: S_OK or not, the line is what counts
    if (!raw.join('').includes('activation request'))
      await new Promise<void>((r) => {
        const seen = () => {
          if (!raw.join('').includes('activation request')) return;
          h.proc.stdout!.off('data', seen);
          r();
        };
        h.proc.stdout!.on('data', seen);
      });
    const line = raw
      .join('')
      .split('\n')
      .find((l) => l.includes('activation request'))!;
    expect(line.match(/"time":/g)).toHaveLength(1);
    const j = JSON.parse(line) as Record<string, unknown>;
    expect(j['hostTime']).toBe('2026-01-01T00:00:00.000Z');
    expect(j['hresult']).toMatch(/^0x[0-9A-F]{8}$/);
    process.kill(h.proc.pid!, 'SIGTERM');
    expect(await h.exited).toBe('0');
    const p = spawn(process.execPath, [BIN, 'serve', ...MEM, '--pretty'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(p);
    let out = '';
    let err = '';
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exit = new Promise<number | null>((r) => p.once('close', (c) => r(c)));
    await new Promise<void>((r) =>
      p.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('listening on')) r();
      }),
    );
    expect(out).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}kmslab KMS host/);
    p.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(err).toBe('');
  });

  it('SIGINT to the host itself: exit 0', async () => {
    const h = await startHost(['serve', ...MEM]);
    process.kill(h.proc.pid!, 'SIGINT');
    expect(await h.exited).toBe('0');
  });
});

describe('closed stdout (| head)', () => {
  it('a command whose stdout is closed before it writes exits 0 with nothing on stderr', async () => {
    for (const args of [
      ['products', '--json'],
      ['dns-record', '--domain', 'lab.test', '--host', 'kms'],
    ]) {
      const p = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(p);
      p.stdout.destroy(); // the reader is gone before the first write
      let stderr = '';
      p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const code = await new Promise<number | null>((r) => p.once('close', (c) => r(c)));
      expect(stderr).toBe('');
      expect(code).toBe(0);
    }
  });
});

describe('kmslab products and product names', () => {
  it('lists the catalog as JSON with the fields a script needs, filtered by words', () => {
    const r = kmslab(['products', '--json', 'professional', 'plus', '2021']);
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(rows.map((x) => x['name']).sort()).toEqual([
      'Office LTSC Professional Plus 2021',
      'Office Professional Plus 2021 Preview',
    ]);
    expect(rows.find((x) => x['preview'] === true)?.['name']).toBe('Office Professional Plus 2021 Preview');
    expect(rows[0]).toHaveProperty('skuId');
    expect(rows[0]).toHaveProperty('kmsId');
    expect(rows[0]).toHaveProperty('requiredCount', 5);
    expect(rows[0]).toHaveProperty('protocol', 6);
    expect(rows[0]).toHaveProperty('gvlk');
    const table = kmslab(['products', 'Windows Server 2022 Standard']);
    expect(table.stdout).toMatch(/^NAME\s+SKU ID/);
    expect(table.stdout).toContain('Windows Server 2022 Standard');
    expect(kmslab(['products', 'no-such-product-anywhere']).status).toBe(1);
  });

  it('activate never lands on a preview SKU for a volume name; an ambiguous name lists candidates', () => {
    const r = kmslab([
      'activate',
      '127.0.0.1:1',
      '--product',
      'Office Professional Plus 2021',
      '--timeout',
      '1s',
    ]);
    expect(r.stdout).toContain('Product: Office LTSC Professional Plus 2021 ');
    expect(r.status).toBe(3); // nothing listens on port 1
    const amb = kmslab(['activate', '127.0.0.1:1', '--product', 'Windows 10']);
    expect(amb.stderr).toMatch(
      /"Windows 10" is ambiguous; give the exact name of one of: .*"Windows 10\/11 Enterprise"/,
    );
    expect(amb.status).toBe(1);
  });
});

describe('exit codes and help', () => {
  it('every command documents the one scheme in its --help', () => {
    for (const c of ['serve', 'activate', 'fleet', 'replay', 'scenario', 'dns-record', 'products']) {
      const r = kmslab([c, '--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(
        /Exit codes \(the same for every kmslab command\):\n\s+0\s+success\n\s+1\s+usage/,
      );
    }
  });

  it('usage errors exit 1 in every command', () => {
    expectOneLineError(
      kmslab(['replay', path.join(dir, 'none.ndjson'), '--target', '127.0.0.1:1', '--as-host']),
      1,
      /^kmslab: --as-host serves the recorded host side; --target is for/m,
    );
    expectOneLineError(kmslab(['fleet', '--days', 'x']), 1, /^kmslab: --days/m);
    expect(kmslab(['activate']).status).toBe(1);
    const bad = path.join(dir, 'bad-scenario.yaml');
    writeFileSync(bad, 'name: x\nstepz: []\n');
    expectOneLineError(kmslab(['scenario', 'check', bad]), 1, /stepz/);
  });

  it('the binary exists (npm run build)', () => {
    expect(existsSync(BIN)).toBe(true);
  });
});

describe('kmslab: an oversized or endless input file is one line naming the file and its limit, exit 1', () => {
  const sparse = (name: string, size: number) => {
    const f = path.join(dir, name);
    writeFileSync(f, '');
    // Sparse: the size is what is checked, nothing big is written.
    truncateSync(f, size);
    return name;
  };
  const MiB = 1 << 20;

  it('scenario files (16 MiB), from their size or as read, for serve and scenario run', () => {
    const big = sparse('big-scenario.yaml', 16 * MiB + 1);
    const limit = /^kmslab: .*: larger than the 16 MiB limit for a scenario file$/m;
    expectOneLineError(kmslab(['serve', ...MEM, '--scenario', big]), 1, limit);
    expectOneLineError(kmslab(['serve', ...MEM, '--scenario', '/dev/zero']), 1, limit);
    expectOneLineError(kmslab(['scenario', 'run', big]), 1, limit);
    expect(kmslab(['scenario', 'run', big]).stderr).toContain('big-scenario.yaml');
  });

  it('config files (1 MiB), token files (4 KiB), transcript lines (1 MiB)', () => {
    const big = sparse('big-config.json', MiB + 1);
    expectOneLineError(
      kmslab(['serve', ...MEM, '--config', big]),
      1,
      /^kmslab: --config big-config\.json: larger than the 1 MiB limit for a config file$/m,
    );
    expectOneLineError(
      kmslab(['serve', ...MEM, '--config', '/dev/zero']),
      1,
      /^kmslab: --config \/dev\/zero: larger than the 1 MiB limit for a config file$/m,
    );
    expectOneLineError(
      kmslab(['serve', ...MEM, '--control', '127.0.0.1:0', '--control-token', '/dev/zero']),
      1,
      /^kmslab: --control-token \/dev\/zero: larger than the 4 KiB limit for a token file$/m,
    );
    expectOneLineError(
      kmslab(['replay', '--target', '127.0.0.1:9', '/dev/zero']),
      1,
      /^kmslab: \/dev\/zero: larger than the 1 MiB limit for a line of a transcript \(NDJSON\) file$/m,
    );
  });
});

describe('kmslab serve --control on an address other machines can reach', () => {
  it('is refused without a token: one line naming the address and --control-token, nothing started', () => {
    for (const [addr, shown] of [
      ['0.0.0.0:0', '0.0.0.0:0'],
      ['[::]:0', '[::]:0'],
    ] as const) {
      const r = kmslab(['serve', ...MEM, '--control', addr]);
      expectOneLineError(
        r,
        1,
        new RegExp(
          `^kmslab: control API on ${shown.replace(/[[\].]/g, '\\$&')} is not loopback: .*--control-token`,
          'm',
        ),
      );
      expect(r.stdout).toBe('');
    }
  });
});
