import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerFleet } from '../../../src/cli/fleet.js';
import { formatFleetSummary } from '../../../src/cli/fleet-run.js';
import {
  DEFAULT_FLEET_PRODUCTS,
  fleetCsv,
  fleetSvg,
  planFleet,
  RemoteFleetHost,
  runFleet,
} from '../../../src/client/fleet.js';
import { startHostRuntime } from '../../../src/server/runtime.js';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function program(): Command {
  const p = new Command().exitOverride();
  p.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerFleet(p);
  return p;
}

function captureStdout(): string[] {
  const out: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out.push(String(s));
    return true;
  });
  return out;
}

/** A memory-store host on a manual clock with a control API, both on ephemeral loopback ports. */
function controlledHost(seed: string, extra: { controlToken?: string } = {}) {
  return startHostRuntime({
    listen: [{ host: '127.0.0.1', port: 0 }],
    control: { host: '127.0.0.1', port: 0 },
    store: 'memory',
    clock: 'manual',
    seed,
    ...extra,
  });
}

describe('remote fleet', () => {
  it('over TCP with the control API gives the same timeline as in-process', async () => {
    const plan = planFleet({ windows: 26, servers: 2, office: 5, days: 9, seed: 'remote', churn: 0.05 });
    const rt = await controlledHost(plan.seed);
    try {
      const remote = await runFleet(plan, {
        host: new RemoteFleetHost({ target: rt.addresses[0]!, control: rt.control!.address, reset: true }),
      });
      const local = await runFleet(plan);
      expect(remote.mode).toBe('remote');
      expect(remote.totals.errors).toBe(0);
      expect(remote.timeline).toEqual(local.timeline);
      expect(remote.epid).toBe(local.epid);
      expect(rt.service.store.historyCount()).toBe(remote.totals.requests);
      expect(rt.clock.now()).toBe(plan.start + 9 * 86_400_000);
    } finally {
      await rt.close();
    }
  });

  it('sends the control token to a control API that needs one (and is refused without it)', async () => {
    const plan = planFleet({ windows: 3, days: 2, seed: 'token' });
    const controlToken = 'fleet-token-0123456789';
    const rt = await controlledHost(plan.seed, { controlToken });
    try {
      const without = new RemoteFleetHost({
        target: rt.addresses[0]!,
        control: rt.control!.address,
        reset: true,
      });
      await expect(runFleet(plan, { host: without })).rejects.toThrow(/HTTP 401/);
      const remote = await runFleet(plan, {
        host: new RemoteFleetHost({
          target: rt.addresses[0]!,
          control: rt.control!.address,
          reset: true,
          controlToken,
        }),
      });
      expect(remote.totals.errors).toBe(0);
      expect(remote.timeline).toEqual((await runFleet(plan)).timeline);
    } finally {
      await rt.close();
    }
  });

  it('counts an unreachable host as errors, retrying every activation interval', async () => {
    const plan = planFleet({ windows: 2, days: 1, seed: 1 });
    const rt = await startHostRuntime({
      listen: [{ host: '127.0.0.1', port: 0 }],
      control: { host: '127.0.0.1', port: 0 },
      store: 'memory',
      clock: 'manual',
    });
    const port = rt.addresses[0]!.port;
    await rt.server.close();
    try {
      const r = await runFleet(plan, {
        host: new RemoteFleetHost({
          target: { host: '127.0.0.1', port },
          control: rt.control!.address,
          timeoutMs: 2000,
        }),
      });
      expect(r.totals.errors).toBe(r.totals.requests);
      const every = 120 * 60_000;
      const expected = plan.machines.reduce(
        (n, m) => n + Math.ceil((plan.start + 86_400_000 - m.arrive) / every),
        0,
      );
      expect(r.totals.requests).toBe(expected);
      expect(Object.keys(r.totals.errorsByCode)[0]).toMatch(/^transport\//);
    } finally {
      await rt.close();
    }
  });
});

describe('kmslab fleet', () => {
  it("names the fleet's default products in its help (both from src/defaults.ts)", () => {
    const fleet = program().commands.find((c) => c.name() === 'fleet')!;
    const help = (flag: string) => fleet.options.find((o) => o.long === flag)!.description;
    expect(help('--windows')).toContain(`(${DEFAULT_FLEET_PRODUCTS.windows}, N_Policy 25)`);
    expect(help('--servers')).toContain(`(${DEFAULT_FLEET_PRODUCTS.server}, N_Policy 5)`);
    expect(help('--office')).toContain(`(${DEFAULT_FLEET_PRODUCTS.office}, N_Policy 5)`);
  });

  it('writes the timeline as JSON, CSV and SVG', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kmslab-fleet-'));
    dirs.push(dir);
    const out = captureStdout();
    await program().parseAsync(
      [
        'fleet',
        '--windows',
        '30',
        '--servers',
        '3',
        '--office',
        '6',
        '--days',
        '12',
        '--seed',
        '5',
        '--churn',
        '5%',
        '--out',
        dir,
        '--no-progress',
      ],
      { from: 'user' },
    );
    const json = JSON.parse(readFileSync(path.join(dir, 'fleet-timeline.json'), 'utf8'));
    expect(json.timeline).toHaveLength(12);
    expect(json.fleet).toEqual({ windows: 30, server: 3, office: 6 });
    expect(json.churn).toBe(0.05);
    expect(json.machines).toBeUndefined();
    const csv = readFileSync(path.join(dir, 'fleet-timeline.csv'), 'utf8').trimEnd().split('\n');
    expect(csv).toHaveLength(13);
    expect(csv[0]).toBe(
      'day,date,pool_Windows,pool_Office2013+,present_windows,present_server,present_office,activated_windows,activated_server,activated_office,requests,activations,insufficient,errors,first_activations,arrived,left',
    );
    expect(csv[1]!.startsWith('1,2026-01-01,33,6,30,3,6,30,3,6,')).toBe(true);
    const svg = readFileSync(path.join(dir, 'fleet-timeline.svg'), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('threshold 25: Windows clients activate');
    expect(svg).toContain('threshold 5: Windows Servers, Office activate');
    expect(svg).toMatch(/stroke-dasharray="10 5"/);
    const text = out.join('');
    expect(text).toContain('30 Windows 10/11 Enterprise (N=25)');
    expect(text).toContain(path.join(dir, 'fleet-timeline.svg'));
  });

  it('--json prints the result', async () => {
    const out = captureStdout();
    await program().parseAsync(
      ['fleet', '--windows', '5', '--servers', '0', '--office', '0', '--days', '2', '--json'],
      {
        from: 'user',
      },
    );
    const r = JSON.parse(out.join(''));
    expect(r.timeline).toHaveLength(2);
    expect(r.timeline[1].activated.windows).toBe(0);
  });

  it('refuses --target without --control', async () => {
    await expect(
      program().parseAsync(['fleet', '--target', '127.0.0.1:1688', '--no-progress'], { from: 'user' }),
    ).rejects.toThrow(/--target and --control go together/);
  });

  it('renders an empty class and long runs', async () => {
    const r = await runFleet(planFleet({ windows: 3, days: 400, seed: 1 }), { machines: false });
    expect(fleetCsv(r).split('\n')).toHaveLength(402);
    const svg = fleetSvg(r);
    expect(svg).not.toContain('Office2013+ pool');
    expect(svg).not.toContain('threshold 5');
    expect(svg).toContain('>360</text>');
    expect(formatFleetSummary(r)).toContain(' 400 ');
  });
});
