/**
 * Reading an input file: the one reader every loader (config, scenario and fault rules, transcript,
 * token) uses, so no file, however large or endless (`/dev/zero`, a FIFO), makes the process allocate
 * more than its cap, and every failure is one line naming the file. A regular file is refused from its
 * size before anything is read; anything else is read in chunks and refused as soon as it passes the
 * cap. Imports nothing of kmslab's (the harness and the CLI both use it).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const MiB = 1 << 20;

/** For a short blocking pause on a descriptor that said EAGAIN (Atomics.wait is a sleep that uses no CPU). */
const pauseCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * Stdin for a blocking read. Whoever shares fd 0's open file description may have made it
 * non-blocking (Node does so for a pipe as soon as anything touches `process.stdin`), and then every
 * read says EAGAIN until data comes. A pipe or FIFO is reopened through /dev/stdin, which gives this
 * process its own, blocking, description of the same pipe; anything else (a socket) stays fd 0, where
 * readFileBounded waits between EAGAINs instead of spinning.
 */
function openStdin(): { fd: number; owned: boolean } {
  try {
    if (fstatSync(0).isFIFO()) return { fd: openSync('/dev/stdin', 'r'), owned: true };
  } catch {
    // No /dev/stdin (or not reopenable): read fd 0 itself.
  }
  return { fd: 0, owned: false };
}

/** The caps, by kind of file (docs/robustness.md "Input files"). */
export const INPUT_LIMITS = {
  config: MiB,
  scenario: 16 * MiB,
  transcript: 256 * MiB,
  token: 4096,
  /** One NDJSON transcript record: a file with a longer line is refused as soon as it is read. */
  transcriptLine: MiB,
} as const;

/**
 * A file that could not be read, or is over its cap: `FILE: cannot read it: no such file or directory`,
 * `FILE: larger than the 1 MiB limit for a config file`. The CLI prints it as one line, exit 1.
 */
export class InputFileError extends Error {
  override readonly name = 'InputFileError';
  constructor(
    readonly file: string,
    message: string,
    /** The cap that was passed, when that is what went wrong. */
    readonly limit?: number,
  ) {
    super(`${file === '-' ? 'stdin' : file}: ${message}`);
  }
}

function tooLarge(file: string, limit: number, what: string): InputFileError {
  return new InputFileError(file, `larger than the ${formatBytes(limit)} limit for a ${what}`, limit);
}

/** A file-system error in a few words ("no such file or directory"), for messages that name the path. */
export function fsErrorReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const known: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EISDIR: 'is a directory',
    ENOTDIR: 'a part of the path is not a directory',
    EROFS: 'read-only file system',
    EEXIST: 'exists and is not a directory',
  };
  return (err.code && known[err.code]) ?? err.message;
}

function formatBytes(n: number): string {
  return n >= MiB && n % MiB === 0
    ? `${n / MiB} MiB`
    : n >= 1024 && n % 1024 === 0
      ? `${n / 1024} KiB`
      : `${n} bytes`;
}

/**
 * The file's bytes, at most `limit` of them (more, or a file that cannot be read, is an InputFileError
 * naming the file). `what` names the kind of file in the message ("scenario file"). `'-'` reads stdin.
 */
function readFileBounded(
  file: string,
  limit: number,
  what: string,
  opts: { maxLineBytes?: number } = {},
): Buffer {
  const maxLine = opts.maxLineBytes ?? Number.POSITIVE_INFINITY;
  let lineLength = 0;
  let fd: number;
  let owned = true;
  try {
    if (file === '-') ({ fd, owned } = openStdin());
    else fd = openSync(file, 'r');
  } catch (e) {
    throw new InputFileError(file, `cannot read it: ${fsErrorReason(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new InputFileError(file, 'cannot read it: is a directory');
    if (st.isFile() && st.size > limit) throw tooLarge(file, limit, what);
    const chunks: Buffer[] = [];
    let total = 0;
    const chunk = Buffer.allocUnsafe(Math.min(limit + 1, 1 << 16));
    let pauseMs = 1;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, chunk, 0, Math.min(chunk.length, limit + 1 - total), null);
        pauseMs = 1;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
          // A non-blocking descriptor with nothing to read yet: wait (1 ms, doubling to 50 ms), not spin.
          Atomics.wait(pauseCell, 0, 0, pauseMs);
          pauseMs = Math.min(pauseMs * 2, 50);
          continue;
        }
        if ((e as NodeJS.ErrnoException).code === 'EOF') break;
        throw new InputFileError(file, `cannot read it: ${fsErrorReason(e)}`);
      }
      if (n === 0) break;
      total += n;
      if (total > limit) throw tooLarge(file, limit, what);
      if (maxLine !== Number.POSITIVE_INFINITY) {
        // Line-oriented formats (NDJSON) fail at the first overlong line, not after `limit` bytes.
        const got = chunk.subarray(0, n);
        let start = 0;
        for (let i = got.indexOf(10); i !== -1; i = got.indexOf(10, i + 1)) {
          if (lineLength + i - start > maxLine) break;
          lineLength = 0;
          start = i + 1;
        }
        lineLength += n - start;
        if (lineLength > maxLine) throw tooLarge(file, maxLine, `line of a ${what}`);
      }
      chunks.push(Buffer.from(chunk.subarray(0, n)));
    }
    return Buffer.concat(chunks, total);
  } finally {
    if (owned) closeSync(fd);
  }
}

/** `readFileBounded` as UTF-8 text. */
export function readTextBounded(
  file: string,
  limit: number,
  what: string,
  opts: { maxLineBytes?: number } = {},
): string {
  return readFileBounded(file, limit, what, opts).toString('utf8');
}
