/** `kmslab fleet`'s implementation: fleet.ts defines the command and loads this module when it runs. */
import os from 'node:os';
import {
  type FleetHost,
  type FleetResult,
  InProcessFleetHost,
  MACHINE_KINDS,
  type MachineKind,
  ProgressBar,
  planFleet,
  RemoteFleetHost,
  runFleet,
  writeFleetOutputs,
} from '../client/fleet.js';
import { EXIT, UsageError } from './errors.js';
import { prepareDir } from './files.js';
import type { FleetFlags } from './fleet.js';
import { parseHostPort, parseIntStrict } from './options.js';
import { readControlToken } from './serve.js';

const KIND_TITLE: Record<MachineKind, string> = { windows: 'Windows', server: 'Servers', office: 'Office' };

function parseRate(s: string): number {
  const t = s.trim();
  const v = t.endsWith('%') ? Number(t.slice(0, -1)) / 100 : Number(t);
  if (!(v >= 0 && v < 1))
    throw new RangeError(`--churn wants a daily fraction in [0, 1) such as 0.01 or 1%, got "${s}"`);
  return v;
}

/** A short human summary: totals and one row per week (every day for short runs). */
export function formatFleetSummary(
  r: FleetResult,
  files?: { json: string; csv: string; svg: string },
): string {
  const lines: string[] = [];
  const sizes = MACHINE_KINDS.map(
    (k) => `${r.fleet[k]} ${r.products[k].name} (N=${r.products[k].requiredCount})`,
  ).join(', ');
  lines.push(`fleet: ${sizes}`);
  lines.push(
    `       ${r.days} virtual days from ${r.start.slice(0, 10)}, seed ${r.seed}, churn ${r.churn * 100}% a day`,
  );
  lines.push(`host:  ${r.host}${r.epid ? `, ePID ${r.epid}` : ''}`);
  const errs = Object.entries(r.totals.errorsByCode)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  lines.push(
    `run:   ${r.totals.requests.toLocaleString('en-US')} requests (${r.totals.activations.toLocaleString('en-US')} activating answers, ${r.totals.insufficient.toLocaleString('en-US')} count-insufficient, ${r.totals.errors} errors${errs ? `: ${errs}` : ''}) in ${(r.wallMs / 1000).toFixed(2)} s (${r.requestsPerSecond.toLocaleString('en-US')} requests/s)`,
  );
  const head = [
    'day'.padStart(4),
    ...r.pools.map((p) => p.name.padStart(Math.max(7, p.name.length))),
    ...MACHINE_KINDS.map((k) => `act.${KIND_TITLE[k]}`.padStart(13)),
    'requests'.padStart(9),
    'errors'.padStart(7),
  ];
  lines.push('', head.join('  '));
  const step = r.days <= 31 ? 1 : 7;
  r.timeline.forEach((row, i) => {
    if (i % step !== 0 && i !== r.timeline.length - 1) return;
    lines.push(
      [
        String(row.day).padStart(4),
        ...r.pools.map((p) => String(row.pools[p.name] ?? 0).padStart(Math.max(7, p.name.length))),
        ...MACHINE_KINDS.map((k) => `${row.activated[k]}/${row.present[k]}`.padStart(13)),
        String(row.requests).padStart(9),
        String(row.errors).padStart(7),
      ].join('  '),
    );
  });
  if (files) lines.push('', `wrote ${files.json}`, `      ${files.csv}`, `      ${files.svg}`);
  return `${lines.join('\n')}\n`;
}

/** The action of `kmslab fleet`. */
export async function fleetCommand(flags: FleetFlags): Promise<void> {
  if ((flags.target === undefined) !== (flags.control === undefined)) {
    throw new UsageError(
      '--target and --control go together: the fleet sends KMS to --target and moves its manual clock through --control',
    );
  }
  const plan = planFleet({
    windows: parseIntStrict(flags.windows, '--windows'),
    servers: parseIntStrict(flags.servers, '--servers'),
    office: parseIntStrict(flags.office, '--office'),
    days: parseIntStrict(flags.days, '--days', 1),
    seed: flags.seed,
    churn: parseRate(flags.churn),
    ...(flags.start ? { start: flags.start } : {}),
    products: {
      ...(flags.windowsProduct ? { windows: flags.windowsProduct } : {}),
      ...(flags.serverProduct ? { server: flags.serverProduct } : {}),
      ...(flags.officeProduct ? { office: flags.officeProduct } : {}),
    },
  });
  if (flags.out) prepareDir(flags.out, '--out');
  if (flags.reset && !flags.target) throw new UsageError('--reset only goes with --target and --control');
  if (flags.controlToken !== undefined && !(flags.target && flags.control))
    throw new UsageError('--control-token only goes with --target and --control');
  const token = flags.target && flags.control ? readControlToken(flags.controlToken) : null;
  const host: FleetHost =
    flags.target && flags.control
      ? new RemoteFleetHost({
          target: parseHostPort(flags.target),
          control: parseHostPort(flags.control, 8688),
          reset: flags.reset === true,
          ...(token ? { controlToken: token } : {}),
        })
      : new InProcessFleetHost({
          seed: plan.seed,
          start: plan.start,
          keepHistory: flags.keepHistory === true,
          // Same requests and results either way (test/unit/fleet/client-thread.test.ts); a second
          // core takes the client side.
          clientThread: flags.oneThread !== true && os.availableParallelism() > 1,
        });
  const bar = new ProgressBar(process.stderr);
  let result: FleetResult;
  try {
    result = await runFleet(plan, {
      host,
      machines: false,
      ...(flags.progress ? { onProgress: (p) => bar.update(p) } : {}),
    });
  } finally {
    bar.done();
  }
  const files = flags.out ? writeFleetOutputs(result, flags.out) : undefined;
  if (flags.json) {
    const { machines: _omit, ...rest } = result;
    process.stdout.write(`${JSON.stringify(files ? { ...rest, files } : rest)}\n`);
  } else {
    process.stdout.write(formatFleetSummary(result, files));
  }
  if (result.totals.requests > 0 && result.totals.errors === result.totals.requests) {
    process.stderr.write('kmslab fleet: every request failed\n');
    process.exitCode = EXIT.FAILED;
  }
}
