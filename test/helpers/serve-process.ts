/**
 * Starting a real `kmslab serve` (or a command that runs one, such as npm) for the end-to-end tests:
 * spawn it, and resolve with its JSON start line once it logs that it is listening. Waits on stdout
 * events only; a host that exits first rejects with its stderr.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export interface StartedHost {
  proc: ChildProcess;
  /** The start line (JSON), with the host's pid and addresses. */
  start: Record<string, unknown>;
  /** Every JSON line the host wrote, the start line included (later lines are appended). */
  lines: Record<string, unknown>[];
  /** The exit code, or the signal, once the process exits. */
  exited: Promise<string>;
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command args` in `cwd` to its end, asynchronously (the test process may hold a port
 * meanwhile); `track` receives the process (for cleanup).
 */
export function runProcess(
  command: string,
  args: string[],
  opts: { cwd: string; track: (p: ChildProcess) => void },
): Promise<Finished> {
  const p = spawn(command, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  opts.track(p);
  let stdout = '';
  let stderr = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => p.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** Spawns `command [...prefix, ...args]` in `cwd`; `track` receives the process (for cleanup). */
export async function startServeProcess(
  args: string[],
  opts: { cwd: string; command: string; prefix: string[]; track: (p: ChildProcess) => void },
): Promise<StartedHost> {
  const proc = spawn(opts.command, [...opts.prefix, ...args], {
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  opts.track(proc);
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<string>((r) => proc.once('exit', (code, signal) => r(signal ?? String(code))));
  const start = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const j = JSON.parse(line) as Record<string, unknown>;
          lines.push(j);
          if (typeof j['msg'] === 'string' && j['msg'].includes('listening')) resolve(j);
        } catch {
          // not a log line (npm's own header lines)
        }
      }
    });
    void exited.then((how) => reject(new Error(`exited (${how}) before starting: ${stderr}`)));
  });
  return { proc, start, lines, exited };
}
