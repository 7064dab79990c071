import { defineConfig } from 'vitest/config';

// `npm run test:system`: the end-to-end and fault-injection suite (real processes, minutes).
// Kept out of `npm test`; test/system/report.ts prints the scenario table at the end.
export default defineConfig({
  test: {
    include: ['test/system/**/*.system.ts'],
    testTimeout: 240_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
    // the same leaked-resource check as `npm test`: a bridge or daemon child left running fails the file
    setupFiles: ['./test/support/leak-check.ts'],
    globalSetup: ['./test/system/report.ts'],
    reporters: ['default', './test/support/count-reporter.ts'],
  },
});
