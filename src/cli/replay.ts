import type { Command } from 'commander';
import type { ReplayReport } from '../harness/replay.js';
import { parseDuration } from '../host/clock.js';
import { EXIT, UsageError } from './errors.js';
import { formatHostPort, parseHostPort } from './options.js';
import { readControlToken } from './serve.js';
import { parseListenAddress } from './values.js';

export interface ReplayFlags {
  target?: string;
  control?: string;
  controlToken?: string;
  asHost?: boolean;
  listen?: string;
  timeout?: string;
  strictIdentity?: boolean;
  json?: boolean;
}

function show(v: unknown): string {
  return v === undefined ? '(none)' : typeof v === 'string' ? v : JSON.stringify(v);
}

/** The human-readable replay report. */
function formatReplayReport(file: string, r: ReplayReport): string {
  const lines = [
    `replayed ${file} against ${r.target}: ${r.connections} connection(s)${r.refusedConnections ? ` and ${r.refusedConnections} refused attempt(s)` : ''}, ${r.pdusSent} PDU(s) sent, ${r.pdusCompared} answer(s) compared`,
  ];
  if (r.differences.length === 0) lines.push('no differences');
  else {
    lines.push(`${r.differences.length} difference(s):`);
    for (const d of r.differences) {
      lines.push(
        `  conn ${d.conn}${d.n !== null ? ` #${d.n}` : ''} ${d.ptype} ${d.field}: recorded ${show(d.recorded)}, replayed ${show(d.replayed)}`,
      );
    }
  }
  lines.push('not compared:');
  for (const i of r.ignored) lines.push(`  - ${i}`);
  if (r.notes.length > 0) {
    lines.push('notes:');
    for (const n of r.notes) lines.push(`  - ${n}`);
  }
  return lines.join('\n');
}

/** The flags that go together: --target (with --control [--control-token], --timeout, --strict-identity, --json) or --as-host (with --listen). */
function checkReplayFlags(flags: ReplayFlags): void {
  if (flags.asHost) {
    const clash = (['target', 'control', 'controlToken', 'timeout', 'strictIdentity'] as const).find(
      (k) => flags[k] !== undefined,
    );
    if (clash)
      throw new UsageError(
        `--as-host serves the recorded host side; --${clash.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for playing the client side against --target`,
      );
    return;
  }
  if (flags.listen !== undefined) throw new UsageError('--listen only goes with --as-host');
  if (flags.controlToken !== undefined && flags.control === undefined)
    throw new UsageError('--control-token only goes with --control');
  if (!flags.target)
    throw new UsageError(
      'give --target HOST:PORT (replay the client side) or --as-host (serve the host side)',
    );
}

/** `kmslab replay FILE --target HOST:PORT`: returns the exit code (0 same, 2 differences). */
export async function replayCommand(
  file: string,
  flags: ReplayFlags,
  out: (s: string) => void,
): Promise<number> {
  const [{ replayTranscript, serveTranscript }, { connectionSlots, parseTranscript }] = await Promise.all([
    import('../harness/replay.js'),
    import('../harness/transcript.js'),
  ]);
  checkReplayFlags(flags);
  const records = parseTranscript({ path: file });
  if (flags.asHost) {
    let listen: ReturnType<typeof parseListenAddress>;
    try {
      listen = parseListenAddress(flags.listen ?? '127.0.0.1:1688', 1688);
    } catch (e) {
      throw new UsageError(`--listen: ${(e as Error).message}`);
    }
    const served = await serveTranscript(records, {
      host: listen.host,
      port: listen.port,
      onMismatch: (m) =>
        out(`connection ${m.conn}: the client sent PTYPE ${m.got} where the transcript has ${m.expected}`),
    });
    const n = connectionSlots(records).length;
    out(
      `serving the recorded host side of ${file} on ${formatHostPort(served)} (${n} recorded connection attempt(s)); Ctrl-C stops`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await served.close();
    out(`answered ${served.stats.answered} PDU(s) on ${served.stats.connections} connection(s)`);
    return 0;
  }
  const target = parseHostPort(flags.target!);
  const control = flags.control ? parseHostPort(flags.control, 8688) : null;
  // The target's control API may need its bearer token (a non-loopback one always does).
  const token = control ? readControlToken(flags.controlToken) : null;
  const setClock = control
    ? async (ms: number) => {
        const res = await fetch(`http://${formatHostPort(control)}/clock/set`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
          body: JSON.stringify({ time: new Date(ms).toISOString() }),
        });
        if (!res.ok) throw new Error(`setting the target's clock: ${res.status} ${await res.text()}`);
      }
    : undefined;
  const report = await replayTranscript(records, {
    host: target.host,
    port: target.port,
    ...(flags.timeout ? { timeoutMs: parseDuration(flags.timeout) } : {}),
    ...(setClock ? { setClock } : {}),
    ...(flags.strictIdentity ? { strictIdentity: true } : {}),
  });
  out(flags.json ? JSON.stringify(report, null, 2) : formatReplayReport(file, report));
  return report.ok ? EXIT.OK : EXIT.REFUSED;
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description(
      'replay a transcript (written by serve --record): play the client side against a host and report differences, or serve the recorded host side to a client',
    )
    .argument('<file>', 'NDJSON transcript')
    .option('--target <host:port>', 'host to play the recorded client side against')
    .option(
      '--control <host:port>',
      "the target's control API: set its manual clock to the recorded times before each request",
    )
    .option(
      '--control-token <file|->',
      'the bearer token the control API needs, read from FILE or stdin (or KMSLAB_CONTROL_TOKEN)',
    )
    .option('--timeout <duration>', 'wait this long for each answer (default 5s)')
    .option(
      '--strict-identity',
      'count ePID / HwId differences (by default another identity is only reported)',
    )
    .option('--json', 'print the report as JSON')
    .option('--as-host', 'serve the recorded host side to a client under test instead')
    .option('--listen <host:port>', 'with --as-host: address to listen on (default 127.0.0.1:1688)')
    .action(async (file: string, flags: ReplayFlags) => {
      process.exitCode = await replayCommand(file, flags, (s) => process.stdout.write(`${s}\n`));
    });
}
