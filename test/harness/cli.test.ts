import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { replayCommand } from '../../src/cli/replay.js';
import { registerScenario, scenarioRunCommand } from '../../src/cli/scenario.js';
import { registerServe } from '../../src/cli/serve.js';
import { KmsClient } from '../../src/client/client.js';
import { SeededRandom } from '../../src/host/random.js';
import { parseTranscript } from '../../src/index.js';
import type { HostRuntime } from '../../src/server/runtime.js';
import { withHost } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kmslab-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture() {
  const lines: string[] = [];
  return { out: (s: string) => lines.push(s), text: () => lines.join('\n') };
}

describe('kmslab scenario run', () => {
  it('runs every shipped scenario and exits 0', async () => {
    const c = capture();
    const files = ['threshold-charging', 'decay-30-days', 'host-outage', 'clock-skew', 'unknown-product'].map(
      (f) => `fixtures/scenarios/${f}.yaml`,
    );
    expect(await scenarioRunCommand(files, {}, c.out)).toBe(0);
    expect(c.text()).toContain('all 5 scenarios passed');
    expect(c.text()).toContain('PASS threshold charging');
  });

  it('exits 1 on a failed expectation, and --json gives the reports', async () => {
    const f = join(dir, 'fail.yaml');
    writeFileSync(f, 'name: fails\nsteps:\n  - activate: {}\n    expect: { activated: true }\n');
    const c = capture();
    expect(await scenarioRunCommand([f], { json: true }, c.out)).toBe(2);
    const [report] = JSON.parse(c.text());
    expect(report).toMatchObject({ file: f, name: 'fails', passed: false });
    expect(report.expectations[0]).toMatchObject({ passed: false, expected: true, actual: 'false' });
  });

  it('registers `scenario run` and `scenario check` on a program', async () => {
    const program = new Command().exitOverride();
    registerScenario(program);
    const names = program.commands.find((c) => c.name() === 'scenario')!.commands.map((c) => c.name());
    expect(names).toEqual(['run', 'check']);
  });
});

describe('kmslab replay', () => {
  it('replays a transcript against a host, setting its clock through the control API', async () => {
    const file = join(dir, 't.ndjson');
    await withHost({ seed: 'cli', record: file }, async (h) => {
      await h.activate({ product: 'Windows 10 Enterprise' });
      await h.advance('3d');
      await h.activate({ product: 'Windows 10 Enterprise' });
    });
    await withHost({ seed: 'cli', control: true, start: '2020-01-01T00:00:00Z' }, async (target) => {
      const c = capture();
      const code = await replayCommand(
        file,
        { target: target.address, control: target.controlUrl!.replace('http://', '') },
        c.out,
      );
      expect(c.text()).toContain('no differences');
      expect(code).toBe(0);
      expect(new Date(target.clock.now()).toISOString()).toBe('2026-01-04T00:00:00.000Z');
    });
    await withHost({ seed: 'other' }, async (target) => {
      const c = capture();
      expect(await replayCommand(file, { target: target.address }, c.out)).toBe(0);
      expect(c.text()).toMatch(/ePID \/ HwId differ in 2 answer\(s\): the target has another identity/);
      expect(
        await replayCommand(
          file,
          { target: target.address, strictIdentity: true, json: true },
          capture().out,
        ),
      ).toBe(2);
    });
    await expect(replayCommand(file, {}, capture().out)).rejects.toThrow(/--target HOST:PORT/);
  });

  it('sends --control-token to a control API that needs one, and fails clearly without it', async () => {
    const file = join(dir, 'token.ndjson');
    await withHost({ seed: 'cli', record: file }, async (h) => {
      await h.activate({ product: 'Windows 10 Enterprise' });
    });
    const token = 'replay-token-0123456789';
    const tokenFile = join(dir, 'token.txt');
    writeFileSync(tokenFile, `${token}\n`);
    await withHost(
      { seed: 'cli', control: true, start: '2020-01-01T00:00:00Z', runtime: { controlToken: token } },
      async (target) => {
        const control = target.controlUrl!.replace('http://', '');
        await expect(replayCommand(file, { target: target.address, control }, capture().out)).rejects.toThrow(
          /setting the target's clock: 401/,
        );
        const c = capture();
        expect(
          await replayCommand(file, { target: target.address, control, controlToken: tokenFile }, c.out),
        ).toBe(0);
        expect(c.text()).toContain('no differences');
        expect(new Date(target.clock.now()).toISOString()).toBe('2026-01-01T00:00:00.000Z');
      },
    );
    await expect(
      replayCommand(file, { target: '127.0.0.1:1', controlToken: tokenFile }, capture().out),
    ).rejects.toThrow(/--control-token only goes with --control/);
  });
});

describe('kmslab serve --scenario --record', () => {
  it("applies the scenario's host settings and fault rules, and writes a transcript", async () => {
    const scenario = join(dir, 'serve.yaml');
    writeFileSync(
      scenario,
      [
        'name: served',
        'host: { seed: served, start: 2027-02-03T04:05:06Z, policy: { refuseUnknown: true }, identity: { hwid: "0102030405060708" } }',
        'faults:',
        '  - { name: second-refused, match: { nth: 2 }, action: { type: hresult, hresult: 0xC004F041 } }',
        'steps: []',
      ].join('\n'),
    );
    const record = join(dir, 'served.ndjson');
    const program = new Command().exitOverride();
    let rt: HostRuntime | null = null;
    registerServe(program, (r) => {
      rt = r;
    });
    await program.parseAsync(
      [
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--store',
        'memory',
        '--log-level',
        'silent',
        '--scenario',
        scenario,
        '--record',
        record,
      ],
      { from: 'user' },
    );
    const runtime = rt as unknown as HostRuntime;
    try {
      expect(runtime.clock.kind).toBe('manual');
      expect(new Date(runtime.clock.now()).toISOString()).toBe('2027-02-03T04:05:06.000Z');
      expect(runtime.service.state.policy.refuseUnknown).toBe(true);
      const port = runtime.addresses[0]!.port;
      const client = new KmsClient({
        host: '127.0.0.1',
        port,
        product: 'Windows 10 Enterprise',
        random: new SeededRandom(1),
        clock: runtime.clock,
      });
      const r = await client.run(2);
      expect(r.map((x) => x.hresult)).toEqual([0xc004f038, 0xc004f041]);
      expect(r[0]!.hwid).toBe('0102030405060708');
    } finally {
      await runtime.close();
    }
    const recs = parseTranscript(readFileSync(record, 'utf8'));
    expect(recs[0]).toMatchObject({ type: 'header', seed: 'served' });
    expect(recs.filter((x) => x.type === 'fault').map((x) => (x as { rule: string }).rule)).toEqual([
      'second-refused',
    ]);
  });
});
