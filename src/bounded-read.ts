/**
 * Reading an input file with a size cap: the one helper every loader (config, scenario, transcript,
 * token) uses, so no file, however large or endless (`/dev/zero`, a FIFO), makes the process allocate
 * more than the cap. A regular file is refused from its size before anything is read; anything else
 * is read in chunks and refused as soon as it passes the cap. Imports nothing of kmslab's.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const MiB = 1 << 20;

/** The caps, by kind of file (docs/robustness.md "Input files"). */
export const INPUT_LIMITS = {
  config: MiB,
  scenario: 16 * MiB,
  transcript: 256 * MiB,
  token: 4096,
  /** One NDJSON transcript record: a file with a longer line is refused as soon as it is read. */
  transcriptLine: MiB,
} as const;

export class InputTooLargeError extends Error {
  override readonly name = 'InputTooLargeError';
  constructor(
    readonly file: string,
    readonly limit: number,
    what: string,
  ) {
    super(`${file}: larger than the ${formatBytes(limit)} limit for a ${what}`);
  }
}

function formatBytes(n: number): string {
  return n >= MiB && n % MiB === 0
    ? `${n / MiB} MiB`
    : n >= 1024 && n % 1024 === 0
      ? `${n / 1024} KiB`
      : `${n} bytes`;
}

/**
 * The file's bytes, at most `limit` of them (more is an InputTooLargeError naming the file and the
 * limit). `what` names the kind of file in the message ("scenario file"). `'-'` with `stdin` reads fd 0.
 */
export function readFileBounded(
  file: string,
  limit: number,
  what: string,
  opts: { maxLineBytes?: number } = {},
): Buffer {
  const maxLine = opts.maxLineBytes ?? Number.POSITIVE_INFINITY;
  let lineLength = 0;
  const fd = file === '-' ? 0 : openSync(file, 'r');
  try {
    const st = fstatSync(fd);
    if (st.isFile() && st.size > limit) throw new InputTooLargeError(file, limit, what);
    const chunks: Buffer[] = [];
    let total = 0;
    const chunk = Buffer.allocUnsafe(Math.min(limit + 1, 1 << 16));
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, chunk, 0, Math.min(chunk.length, limit + 1 - total), null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        if ((e as NodeJS.ErrnoException).code === 'EOF') break;
        throw e;
      }
      if (n === 0) break;
      total += n;
      if (total > limit) throw new InputTooLargeError(file, limit, what);
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
        if (lineLength > maxLine) throw new InputTooLargeError(file, maxLine, `line of a ${what}`);
      }
      chunks.push(Buffer.from(chunk.subarray(0, n)));
    }
    return Buffer.concat(chunks, total);
  } finally {
    if (fd !== 0) closeSync(fd);
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
