import { CommanderError } from 'commander';
import { buildProgram } from './main.js';

/** Runs the `kmslab` command line (bin.ts is the entry point; it sets V8 flags first). */
export function runCli(argv: string[]): void {
  buildProgram()
    .parseAsync(argv)
    .catch((e: unknown) => {
      if (e instanceof CommanderError) {
        process.exitCode = e.exitCode;
        return;
      }
      process.stderr.write(`kmslab: ${(e as Error).message}\n`);
      process.exitCode = 3;
    });
}
