import { defineConfig } from 'vitest/config';

// Run by test/harness/vitest-integration.test.ts: strict mode must fail unexpected.spec.ts's first test.
export default defineConfig({
  test: { root: import.meta.dirname, include: ['*.spec.ts'] },
});
