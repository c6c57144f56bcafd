import { type Command, CommanderError } from 'commander';
import { isProtocolError } from '../wire/errors.js';
import { EXIT, UsageError } from './errors.js';
import { buildProgram } from './main.js';

/**
 * `--max-clock-skew -4h`: commander reads a dash-led word after an option whose value is optional as
 * another option ("unknown option '-4h'"). Joined as `--max-clock-skew=-4h`, the value reaches its
 * schema, which answers what is wrong with it.
 */
function joinDashValues(program: Command, argv: string[]): string[] {
  const optional = new Set<string>();
  const walk = (c: Command) => {
    for (const o of c.options) if (o.optional && o.long) optional.add(o.long);
    c.commands.forEach(walk);
  };
  walk(program);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (optional.has(a) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** Errors about a file or value the user gave (the harness's own error classes, by name). */
const BAD_INPUT = new Set([
  'ScenarioError',
  'FaultRuleError',
  'TranscriptError',
  'SchemaError',
  'InputFileError',
]);

/** One line on stderr, no stack: what the user got wrong, or what failed. */
function fail(e: unknown): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT.USAGE;
  const err = e as Error;
  const usage =
    e instanceof RangeError || BAD_INPUT.has(err?.name) || (isProtocolError(e) && e.code === 'BAD_VALUE');
  const first = String(err?.message ?? e)
    .split('\n')
    .join(' ')
    .replace(/\s+/g, ' ')
    .trim();
  process.stderr.write(`kmslab: ${first}\n`);
  if (e instanceof UsageError) return e.exitCode;
  return usage ? EXIT.USAGE : EXIT.FAILED;
}

/**
 * A closed stdout (`kmslab activate … | head -1`) ends the command quietly with exit 0: the reader
 * has what it wanted.
 */
function quietOnClosedPipe(): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') process.exit(EXIT.OK);
      throw e;
    });
  }
}

/** Runs the `kmslab` command line (bin.ts is the entry point; it sets V8 flags first). */
export function runCli(argv: string[]): void {
  quietOnClosedPipe();
  const program = buildProgram();
  program.parseAsync(joinDashValues(program, argv)).catch((e: unknown) => {
    // An error before anything keeps running (bad input, a port taken): exit now, even if a
    // half-built resource would keep the event loop alive.
    process.exit(fail(e));
  });
}
