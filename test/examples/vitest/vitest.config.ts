import { defineConfig } from 'vitest/config';

// One lab host for the whole run, started by the globalSetup file; tests read its address with inject().
export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ['*.spec.ts'],
    globalSetup: ['./global-setup.ts'],
  },
});
