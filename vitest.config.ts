import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'agent/**/*.test.ts', 'server/**/*.test.ts', 'shared/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts', 'test/postgres-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 600_000,
  },
});
