import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import type { LabHost } from '../harness/lab-host.js';
import type { Scenario, ScenarioReport } from '../harness/scenario.js';
import { ManualClock } from '../host/clock.js';
import type { HostRuntimeOptions } from '../server/runtime.js';
import type { ServeConfig } from './serve.js';

// The lab harness (lab host, scenario runner, yaml) is imported where it is used, so that `kmslab
// serve` without --scenario / --record and the other commands do not load it.

/**
 * `kmslab serve --scenario FILE`: the scenario's host settings as serve flags (flags given on the
 * command line win over them). Its start time and the policy keys serve has no flag for are applied
 * by startServeLab.
 */
export function scenarioServeConfig(s: Scenario): Partial<ServeConfig> {
  const h = s.host ?? {};
  const p = h.policy ?? {};
  const c: Partial<ServeConfig> = { clock: h.clock ?? 'manual' };
  if (h.seed !== undefined) c.seed = h.seed;
  for (const k of ['refuseUnknown', 'refuseRetail', 'refuseMismatch', 'lenient'] as const)
    if (p[k] !== undefined) c[k] = p[k];
  if (p.maxClockSkew !== undefined && p.maxClockSkew !== null) {
    c.maxClockSkew = typeof p.maxClockSkew === 'boolean' ? p.maxClockSkew : String(p.maxClockSkew);
  }
  if (p.activationInterval !== undefined) c.activationInterval = p.activationInterval;
  if (p.renewalInterval !== undefined) c.renewalInterval = p.renewalInterval;
  if (h.identity?.epids) c.epid = Object.entries(h.identity.epids).map(([k, v]) => `${k}=${v}`);
  if (h.identity?.hwid) c.hwid = h.identity.hwid;
  if (h.identity?.hostBuild !== undefined) c.hostBuild = h.identity.hostBuild;
  if (h.identity?.lcid !== undefined) c.lcid = h.identity.lcid;
  if (h.profile?.ndr64 !== undefined) c.ndr64 = h.profile.ndr64;
  if (h.profile?.btfn !== undefined) c.btfn = h.profile.btfn;
  return c;
}

/**
 * `kmslab serve` with `--scenario` and/or `--record`: the same host as startHostRuntime(opts) would
 * give, run as a lab host so the scenario's fault rules (and `/faults` on the control API) and the
 * transcript recorder are in place.
 */
export async function startServeLab(
  opts: HostRuntimeOptions,
  extra: { scenario: Scenario | null; record?: string | undefined },
): Promise<LabHost> {
  const [{ startLabHost }, { scenarioPolicy }] = await Promise.all([
    import('../harness/lab-host.js'),
    import('../harness/scenario.js'),
  ]);
  const s = extra.scenario;
  const clock =
    opts.clock === 'manual' && s?.host?.start
      ? new ManualClock(Date.parse(s.host.start))
      : (opts.clock ?? 'system');
  const {
    listen,
    store,
    clock: _c,
    seed,
    catalog,
    policy,
    identity,
    profile,
    control,
    logger,
    ...rest
  } = opts;
  return startLabHost({
    clock,
    seed: seed ?? String(randomBytes(6).readUIntBE(0, 6)),
    store: store ?? 'memory',
    ...(catalog ? { products: catalog } : {}),
    policy: { ...scenarioPolicy(s?.host?.policy), ...policy },
    ...(identity ? { identity } : {}),
    ...(profile ? { profile } : {}),
    ...(logger ? { logger } : {}),
    ...(control ? { control } : {}),
    ...(s?.faults ? { faults: s.faults } : {}),
    ...(extra.record ? { record: extra.record } : {}),
    advertisedPort: 'actual',
    runtime: { ...rest, ...(listen ? { listen } : {}) },
  });
}

export interface ScenarioRunFlags {
  json?: boolean;
  record?: string;
}

/** `kmslab scenario run FILE...`: returns the exit code (0 all passed, 2 an expectation failed). */
export async function scenarioRunCommand(
  files: string[],
  flags: ScenarioRunFlags,
  out: (s: string) => void,
): Promise<number> {
  const { formatScenarioReport, runScenario } = await import('../harness/scenario.js');
  const reports: (ScenarioReport & { file: string })[] = [];
  for (const [i, file] of files.entries()) {
    const record =
      flags.record && files.length > 1 ? flags.record.replace(/(\.[^./]+)?$/, `-${i + 1}$1`) : flags.record;
    const r = await runScenario(file, record ? { record } : {});
    const { transcript: _t, ...rest } = r;
    reports.push({ file, ...rest });
    if (!flags.json) out(`${formatScenarioReport(r)}\n`);
  }
  if (flags.json) out(JSON.stringify(reports, null, 2));
  else if (files.length > 1) {
    const failed = reports.filter((r) => !r.passed).length;
    out(
      failed === 0 ? `all ${files.length} scenarios passed` : `${failed} of ${files.length} scenarios failed`,
    );
  }
  return reports.every((r) => r.passed) ? 0 : 2;
}

export function registerScenario(program: Command): void {
  const cmd = program
    .command('scenario')
    .description('scenario files: host settings, faults over time, steps and expected outcomes');
  cmd
    .command('run')
    .description(
      'run scenarios in-process against a fresh lab host each; exit 0 when every expectation is met, 2 otherwise',
    )
    .argument('<files...>', 'scenario files (YAML or JSON)')
    .option('--json', 'print the reports as JSON')
    .option('--record <file>', 'write a transcript of the run (numbered per file when several)')
    .action(async (files: string[], flags: ScenarioRunFlags) => {
      process.exitCode = await scenarioRunCommand(files, flags, (s) => process.stdout.write(`${s}\n`));
    });
  cmd
    .command('check')
    .description('validate scenario files without running them')
    .argument('<files...>', 'scenario files (YAML or JSON)')
    .action(async (files: string[]) => {
      const { loadScenario } = await import('../harness/scenario.js');
      for (const f of files) {
        await loadScenario(f);
        process.stdout.write(`${f}: ok\n`);
      }
    });
}
