/**
 * The command line's one exit-code scheme and its one kind of user-facing error. Every command exits
 * with these codes (docs/cli.md, "Exit codes", and every command's --help), and every bad input ends
 * as one line on stderr naming the flag, key or path and the bad value, never a stack trace.
 */

export const EXIT = {
  /** Success: activated, scenario passed, replay identical, host stopped cleanly. */
  OK: 0,
  /** Usage or bad input: a flag, a config or scenario file, a product name, a port already taken. */
  USAGE: 1,
  /** The host answered but refused or did not activate; a scenario expectation or a replay differed. */
  REFUSED: 2,
  /** Transport or verification failure: no answer, a broken answer, every fleet request failed. */
  FAILED: 3,
} as const;

/** The text every --help ends with, and docs/cli.md's "Exit codes" section says the same. */
export const EXIT_CODES_HELP = `
Exit codes (the same for every kmslab command):
  0  success
  1  usage or bad input (flags, config or scenario files, product names, addresses in use)
  2  the host answered but refused or did not activate (also: a scenario expectation failed, a replay differed)
  3  transport or verification failure (no answer, a broken answer, every fleet request failed)
`;

/** A bad input the user can fix: printed as `kmslab: MESSAGE` (one line), exit code 1 unless given. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.USAGE,
  ) {
    super(message);
  }
}

export { formatIssues, show } from '../schema.js';
