import { Command } from 'commander';
import { registerActivate } from './activate.js';
import { registerDnsRecord } from './dns-record.js';
import { registerFleet } from './fleet.js';
import { registerReplay } from './replay.js';
import { registerScenario } from './scenario.js';
import { registerServe } from './serve.js';

/** The `kmslab` command line: one thin file per command. */
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
  return program;
}
