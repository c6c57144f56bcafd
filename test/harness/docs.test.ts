import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** docs/harness.md includes test/examples/*.test.ts verbatim: they cannot drift apart. */
describe('docs/harness.md examples', () => {
  const doc = readFileSync('docs/harness.md', 'utf8');
  const blocks = [...doc.matchAll(/<!-- example: (\S+) -->\n```ts\n([\s\S]*?)\n```/g)].map((m) => ({
    file: m[1]!,
    code: m[2]!,
  }));
  const files = readdirSync('test/examples')
    .filter((f) => f.endsWith('.test.ts'))
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
