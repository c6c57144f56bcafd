import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // npm run coverage: line/branch coverage of src/ (V8's own counters), text summary + HTML in coverage/.
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      exclude: ['src/cli/bin.ts'],
      reporter: ['text-summary', 'html'],
      reportsDirectory: 'coverage',
    },
    reporters: process.env.KMSLAB_JSON_REPORT
      ? ['default', ['json', { outputFile: process.env.KMSLAB_JSON_REPORT }]]
      : ['default'],
  },
});
