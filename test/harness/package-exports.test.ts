import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The package as a consumer sees it: a project in a temp dir whose node_modules/kmslab is a symlink to
 * this checkout, type-checked with tsc under moduleResolution nodenext and bundler, then imported by
 * Node. It checks the built dist/ (npm ci builds it; locally `npm run build`).
 */
const run = promisify(execFile);
const repo = resolve('.');
const tsc = join(repo, 'node_modules/typescript/lib/tsc.js');
const hasTesting = existsSync(join(repo, 'src/testing/index.ts'));
let dir: string;

const consumer = `
import { startLabHost, type LabHost, hostDown, HResult, activate } from 'kmslab';
import { KmsClient, planFleet, querySrv } from 'kmslab/client';
import { decodePdu, encodeRequest, parseEpid, ProtocolError } from 'kmslab/protocol';
import { createKmsTest, nextActivation, type KmsFixture } from 'kmslab/vitest';
import { kmslabGlobalSetup } from 'kmslab/vitest/global-setup';
${hasTesting ? "export * as testing from 'kmslab/testing';" : ''}

export async function check(): Promise<number> {
  const host: LabHost = await startLabHost({ seed: 1, faults: [hostDown(0, '1h')] });
  const port: number = host.port;
  // @ts-expect-error the types are real: a port is not a string
  const wrong: string = host.port;
  const [r] = await activate({ host: host.host, port, product: 'Windows 11 Pro' });
  await host.close();
  return r!.hresult === HResult.COUNT_INSUFFICIENT ? port : wrong.length;
}
export const values = [KmsClient, planFleet, querySrv, decodePdu, encodeRequest, parseEpid, ProtocolError];
export const vitestApi = [createKmsTest, nextActivation, kmslabGlobalSetup];
export type Fixture = KmsFixture;
`;

// Internals are not part of any entry point.
const internal = `
// @ts-expect-error not exported by the package
import { FaultEngine } from 'kmslab/dist/harness/faults.js';
export const f = FaultEngine;
`;

beforeAll(() => {
  if (!existsSync(join(repo, 'dist/index.d.ts'))) throw new Error('dist/ is missing: run npm run build');
  dir = mkdtempSync(join(tmpdir(), 'kmslab-consumer-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(repo, join(dir, 'node_modules/kmslab'), 'dir');
  symlinkSync(join(repo, 'node_modules/@types'), join(dir, 'node_modules/@types'), 'dir');
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', type: 'module', private: true }),
  );
  writeFileSync(join(dir, 'consumer.ts'), consumer);
  writeFileSync(join(dir, 'internal.ts'), internal);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function typecheck(module: string, moduleResolution: string) {
  const tsconfig = `tsconfig.${moduleResolution}.json`;
  writeFileSync(
    join(dir, tsconfig),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2023'],
        module,
        moduleResolution,
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
      },
      files: ['consumer.ts', 'internal.ts'],
    }),
  );
  return run(process.execPath, [tsc, '-p', tsconfig], { cwd: dir, timeout: 120_000 }).then(
    () => '',
    (e: { stdout?: string }) => e.stdout ?? String(e),
  );
}

describe('the package entry points, from a consumer project', () => {
  it('type-check with moduleResolution nodenext', async () => {
    expect(await typecheck('nodenext', 'nodenext')).toBe('');
  });

  it('type-check with moduleResolution bundler', async () => {
    expect(await typecheck('esnext', 'bundler')).toBe('');
  });

  it('load in Node, and the root runs a lab host', async () => {
    const script = `
      const root = await import('kmslab');
      const host = await root.startLabHost({ seed: 1 });
      const [r] = await root.activate({ host: host.host, port: host.port, product: 'Windows 11 Pro' });
      await host.close();
      const client = await import('kmslab/client');
      const protocol = await import('kmslab/protocol');
      const setup = await import('kmslab/vitest/global-setup');
      console.log(JSON.stringify({
        count: r.count,
        client: typeof client.KmsClient,
        protocol: typeof protocol.decodePdu,
        setup: typeof setup.kmslabGlobalSetup,
        internal: 'FaultEngine' in root,
      }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: dir,
      timeout: 60_000,
    });
    expect(JSON.parse(stdout)).toEqual({
      count: 1,
      client: 'function',
      protocol: 'function',
      setup: 'function',
      internal: false,
    });
  });
});
