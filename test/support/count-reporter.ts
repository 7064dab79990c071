import type { Reporter, TestModule } from 'vitest/node';

/**
 * CI does not read vitest's own summary: print the plain closing line
 * `N passed, N failed[, N skipped]` that it does read. Unhandled errors count as failures
 * so a run that crashed between tests can never look green, and so does a file that failed
 * outside its tests (an afterAll, the leaked-resource check) while every test in it passed.
 */
export default class CountReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    let skipped = 0;
    for (const mod of testModules) {
      let failedTests = 0;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failedTests += 1;
        else skipped += 1;
      }
      failed += failedTests;
      if (mod.state() === 'failed' && failedTests === 0) failed += 1;
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  }
}
