import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * docs/harness.md, docs/client.md, docs/vitest.md and docs/testing.md include every .ts file under
 * test/examples/ verbatim: they cannot drift apart.
 */
describe('docs examples', () => {
  const doc = ['docs/harness.md', 'docs/client.md', 'docs/vitest.md', 'docs/testing.md']
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const blocks = [...doc.matchAll(/<!-- example: (\S+) -->\n```ts\n([\s\S]*?)\n```/g)].map((m) => ({
    file: m[1]!,
    code: m[2]!,
  }));
  const files = (readdirSync('test/examples', { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `test/examples/${f}`);

  it('includes every example file exactly once', () => {
    expect(blocks.map((b) => b.file).sort()).toEqual(files.sort());
  });

  for (const b of blocks) {
    it(`${b.file} is included verbatim`, () => {
      expect(b.code).toBe(readFileSync(b.file, 'utf8').replace(/\n$/, ''));
    });
  }
});
