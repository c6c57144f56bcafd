import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: process.env.KMSLAB_JSON_REPORT
      ? ['default', ['json', { outputFile: process.env.KMSLAB_JSON_REPORT }]]
      : ['default'],
  },
});
