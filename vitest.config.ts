import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Fails a file that leaves sockets, servers, children or timers open (README, Tests).
    setupFiles: ['./test/support/leak-check.ts'],
    reporters: ['default', './test/support/count-reporter.ts'],
  },
});
