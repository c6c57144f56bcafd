/**
 * `kmslab fleet`: the command and its flags. The fleet simulator (fleet-run.ts, client/fleet.js) is
 * loaded only when the command runs.
 */
import type { Command } from 'commander';
import { DEFAULT_FLEET_PRODUCTS } from '../defaults.js';

/** `kmslab fleet`: flags as parsed by commander. */
export interface FleetFlags {
  windows: string;
  servers: string;
  office: string;
  days: string;
  seed: string;
  churn: string;
  start?: string;
  windowsProduct?: string;
  serverProduct?: string;
  officeProduct?: string;
  target?: string;
  control?: string;
  controlToken?: string;
  reset?: boolean;
  out?: string;
  json?: boolean;
  keepHistory?: boolean;
  oneThread?: boolean;
  progress: boolean;
}

export function registerFleet(program: Command): void {
  program
    .command('fleet')
    .description(
      'simulate a fleet of KMS clients living by the real schedule (retry every 120 min, renew every 7 days) over virtual days; in-process host, or a kmslab host with a manual clock',
    )
    .option(
      '--windows <n>',
      `Windows client machines (${DEFAULT_FLEET_PRODUCTS.windows}, N_Policy 25)`,
      '100',
    )
    .option('--servers <n>', `Windows Server machines (${DEFAULT_FLEET_PRODUCTS.server}, N_Policy 5)`, '10')
    .option('--office <n>', `Office installations (${DEFAULT_FLEET_PRODUCTS.office}, N_Policy 5)`, '20')
    .option('--days <n>', 'virtual days to simulate', '90')
    .option('--seed <n>', 'seed for CMIDs, names, arrival times, churn and the host', '1')
    .option(
      '--churn <rate>',
      'each day this fraction of each class leaves for good and is replaced (e.g. 0.01 or 1%)',
      '0',
    )
    .option('--start <iso>', 'virtual start time (default 2026-01-01T00:00:00Z)')
    .option('--windows-product <name>', 'catalog product for the Windows clients')
    .option('--server-product <name>', 'catalog product for the servers')
    .option('--office-product <name>', 'catalog product for Office')
    .option('--target <host:port>', 'talk KMS over TCP to this kmslab host (needs --control)')
    .option('--control <host:port>', "that host's control API; it must run with --clock manual")
    .option(
      '--control-token <file|->',
      'the bearer token that control API needs, read from FILE or stdin (or KMSLAB_CONTROL_TOKEN)',
    )
    .option('--reset', 'empty the remote host first (POST /reset)')
    .option('--out <dir>', 'write fleet-timeline.json, fleet-timeline.csv and fleet-timeline.svg here')
    .option('--json', 'print the whole result as JSON on stdout')
    .option('--keep-history', "in-process: keep the host's per-request history (slower, much more memory)")
    .option(
      '--one-thread',
      "in-process: run the clients on the host's thread (default: on a worker thread when there is more than one core; same results)",
    )
    .option('--no-progress', 'no progress bar on the terminal')
    .action(async (flags: FleetFlags) => {
      const { fleetCommand } = await import('./fleet-run.js');
      await fleetCommand(flags);
    });
}
