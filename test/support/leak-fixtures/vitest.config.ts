import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Runs the two fixture files of test/support/leak-check.test.ts with the suite's own setup
// file and reporter (pool and isolation as in vitest.config.ts).
export default defineConfig({
  root: fileURLToPath(new URL('../../..', import.meta.url)),
  test: {
    include: ['test/support/leak-fixtures/*.fixture.ts'],
    pool: 'forks',
    setupFiles: ['./test/support/leak-check.ts'],
    reporters: ['default', './test/support/count-reporter.ts'],
  },
});
