import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';

/**
 * `npm run lint` runs knip's unused-export check (knip.json): an export nothing imports fails it. Shown
 * on a copy of the project with one new export added, so the check itself is tested, not just run.
 */
const run = promisify(execFile);
const repo = resolve('.');
const dir = mkdtempSync(join(tmpdir(), 'kmslab-knip-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('lint fails on a new unused export and names it', async () => {
  for (const p of ['src', 'test', 'bench', 'package.json', 'knip.json', 'tsconfig.json', 'vitest.config.ts'])
    cpSync(join(repo, p), join(dir, p), { recursive: true });
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'), 'dir');
  appendFileSync(join(dir, 'src/host/clock.ts'), '\nexport const NOBODY_IMPORTS_THIS = 1;\n');
  const knip = join(repo, 'node_modules/knip/bin/knip.js');
  const result = await run(process.execPath, [knip, '--exports', '--no-config-hints', '--no-progress'], {
    cwd: dir,
    timeout: 120_000,
  }).then(
    () => ({ code: 0, stdout: '' }),
    (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
  );
  expect(result.code).toBe(1);
  expect(result.stdout).toMatch(/Unused exports \(1\)\s+NOBODY_IMPORTS_THIS\s+src\/host\/clock\.ts/);
});
