import { Command } from 'commander';
import { registerActivate } from './activate.js';
import { registerDnsRecord } from './dns-record.js';
import { EXIT_CODES_HELP } from './errors.js';
import { registerFleet } from './fleet.js';
import { registerProducts } from './products.js';
import { registerReplay } from './replay.js';
import { registerScenario } from './scenario.js';
import { registerServe } from './serve.js';
import { registerStatus } from './status.js';

/** Every command (and sub-command) ends its --help with the one exit-code table. */
function withExitCodes(c: Command): void {
  c.addHelpText('after', EXIT_CODES_HELP);
  for (const sub of c.commands) withExitCodes(sub);
}

/** The `kmslab` command line: one thin file per command (a new one is one register call here). */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('kmslab')
    .description(
      'kmslab: a deterministic, observable lab emulator of a Microsoft KMS host, with a client emulator',
    )
    .version('0.1.0');
  registerServe(program);
  registerActivate(program);
  registerDnsRecord(program);
  registerFleet(program);
  registerReplay(program);
  registerScenario(program);
  registerProducts(program);
  registerStatus(program);
  withExitCodes(program);
  return program;
}
