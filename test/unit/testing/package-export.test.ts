/**
 * `kmslab/testing` resolves through the package's own name (package.json "exports", Node's
 * self-reference), with its types, after `npm run build`: a consumer file importing it is type-checked
 * with the TypeScript API under NodeNext resolution, and imported by Node in a child process.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../../..');
const consumerPath = path.join(root, 'test/unit/testing/__consumer__.ts');
const consumer = `
import fc from 'fast-check';
import { arbitraries, countModel, createMemoryHost, type Fleet, type MemoryHost } from 'kmslab/testing';
const host: MemoryHost = createMemoryHost({ seed: 1, fast: true });
const fleets: fc.Arbitrary<Fleet> = arbitraries.fleet({ maxMachines: 3 });
const n: number = countModel([], host.now()).count('windows');
// @ts-expect-error the model's pools are named
countModel([], 0).count('linux');
export { fleets, n };
`;

describe("import from 'kmslab/testing'", () => {
  it('is built (run npm run build after changing src/testing)', () => {
    expect(existsSync(path.join(root, 'dist/testing/index.d.ts'))).toBe(true);
  });

  it('type-checks through the package name and resolves to dist/testing/index.d.ts', () => {
    const options: ts.CompilerOptions = {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
    };
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) =>
      path.resolve(name) === consumerPath
        ? ts.createSourceFile(name, consumer, lang)
        : getSourceFile(name, lang, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => path.resolve(name) === consumerPath || fileExists(name);
    const program = ts.createProgram([consumerPath], options, host);
    const errors = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(errors).toEqual([]);
    const resolved = ts.resolveModuleName(
      'kmslab/testing',
      consumerPath,
      options,
      host,
      undefined,
      undefined,
      ts.ModuleKind.ESNext,
    );
    expect(path.relative(root, resolved.resolvedModule!.resolvedFileName)).toBe('dist/testing/index.d.ts');
  });

  it('imports in Node by the package name', () => {
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { arbitraries, countModel, createMemoryHost } from 'kmslab/testing';
         const h = createMemoryHost({ fast: true });
         const r = h.request({ cmid: '00000000-0000-4000-8000-000000000001', product: 'Windows Server 2022 Standard' });
         console.log(JSON.stringify([typeof arbitraries.fleet, countModel([], 0).count(), r.count]));`,
      ],
      { cwd: root, encoding: 'utf8' },
    );
    expect(JSON.parse(out)).toEqual(['function', 0, 1]);
  });
});
