/**
 * The one reader of input files (src/bounded-read.ts): a regular file over its cap is refused from its
 * size (a sparse file, so nothing big is written), an endless one (/dev/zero) after the cap, a line
 * over the NDJSON cap at once; each error names the file and the limit. Stdin is read whole even when
 * it was made non-blocking (a child whose `process.stdin` was touched), over a pipe and over a socket.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputFileError, readTextBounded } from '../../src/bounded-read.js';

const dir = mkdtempSync(path.join(tmpdir(), 'kmslab-bounded-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1 << 20;

function refusal(fn: () => unknown): InputFileError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputFileError);
    return e as InputFileError;
  }
  throw new Error('expected an InputFileError');
}

describe('readTextBounded', () => {
  it('reads a file within its cap', () => {
    const f = path.join(dir, 'ok.json');
    writeFileSync(f, '{"a":1}\n');
    expect(readTextBounded(f, 100, 'config file')).toBe('{"a":1}\n');
  });

  it('refuses a regular file over its cap from its size, naming the file and the limit', () => {
    const f = path.join(dir, 'big.yaml');
    writeFileSync(f, '');
    truncateSync(f, 16 * MiB + 1);
    const e = refusal(() => readTextBounded(f, 16 * MiB, 'scenario file'));
    expect(e.message).toBe(`${f}: larger than the 16 MiB limit for a scenario file`);
    expect(e.limit).toBe(16 * MiB);
  });

  it('refuses an endless file once it passes the cap, and a line over the line cap', () => {
    expect(refusal(() => readTextBounded('/dev/zero', MiB, 'config file')).message).toBe(
      '/dev/zero: larger than the 1 MiB limit for a config file',
    );
    const e = refusal(() =>
      readTextBounded('/dev/zero', 256 * MiB, 'transcript (NDJSON) file', { maxLineBytes: MiB }),
    );
    expect(e.message).toBe('/dev/zero: larger than the 1 MiB limit for a line of a transcript (NDJSON) file');
    const f = path.join(dir, 'lines.ndjson');
    writeFileSync(f, `${'x'.repeat(10)}\n${'y'.repeat(10)}\n`);
    expect(readTextBounded(f, 1000, 'transcript', { maxLineBytes: 10 })).toContain('yyyy');
    writeFileSync(f, `${'x'.repeat(10)}\n${'y'.repeat(11)}\n`);
    expect(refusal(() => readTextBounded(f, 1000, 'transcript', { maxLineBytes: 10 })).limit).toBe(10);
  });

  it('names the file when it cannot be read', () => {
    expect(refusal(() => readTextBounded(path.join(dir, 'none'), 10, 'x')).message).toMatch(
      /none: cannot read it: no such file or directory$/,
    );
    expect(refusal(() => readTextBounded(dir, 10, 'x')).message).toMatch(/cannot read it: is a directory$/);
  });
});

/**
 * A child that makes its stdin non-blocking (touching `process.stdin` does, for a pipe or socket),
 * says "ready", then reads stdin with readTextBounded; the test writes only after "ready", so the
 * child's first reads find nothing there.
 */
const CHILD = `
process.stdin.pause();
const { readTextBounded } = await import(${JSON.stringify(new URL('../../src/bounded-read.ts', import.meta.url).pathname)});
process.stderr.write('ready\\n');
process.stdout.write(JSON.stringify(readTextBounded('-', 4096, 'token file')));
`;

function readThroughChild(viaPipe: boolean): Promise<{ code: number | null; out: string }> {
  const node = [process.execPath, '--import', 'tsx', '--input-type=module', '-e', CHILD];
  // node:child_process gives the child a socket; `cat |` puts a real pipe in between.
  const child = viaPipe
    ? spawn('sh', ['-c', 'cat | exec "$0" "$@"', ...node], { stdio: 'pipe' })
    : spawn(node[0]!, node.slice(1), { stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  child.stderr.on('data', (d: Buffer) => {
    if (d.toString('utf8').includes('ready')) child.stdin.end('lab-token-0123456789abcdef\n');
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
}

describe('stdin made non-blocking by someone else', () => {
  it.each([
    ['a socket', false],
    ['a pipe', true],
  ])(
    'is read whole over %s (waits for data, never gives up on EAGAIN)',
    async (_what, viaPipe) => {
      const r = await readThroughChild(viaPipe);
      expect(r).toEqual({ code: 0, out: JSON.stringify('lab-token-0123456789abcdef\n') });
    },
    30_000,
  );
});
