import { relative } from 'node:path';
import { beforeAll } from 'vitest';
import { type AllowRule, formatLeaks, openFiles, ResourceTracker, settleLeaks } from './leaked-resources.ts';

/**
 * vitest setup file (vitest.config.ts `setupFiles`): a test file that leaves a socket, server,
 * child, worker, file handle, watcher, signal listener or timer open fails, with the kind of
 * resource and the line that created it ("a leaked handle is a failing test", STYLE.md).
 *
 * Per file: the pool is `forks` with vitest's default isolation, so each test file runs in a
 * fresh child process and loads this module before the file itself; the baseline below is that
 * process's own resources (vitest's IPC pipe, stdio).
 *
 * When: the check is the cleanup returned by this module's beforeAll. This module's hooks are
 * registered first, and vitest runs a file's afterAll hooks in reverse ("stack") order and the
 * beforeAll cleanups after every afterAll, also in reverse; so the check runs after everything the
 * file itself tears down, including the cleanups its own beforeAll hooks return.
 */

const SETTLE_MS = 2_000;
const POLL_MS = 25;

/**
 * What a file may leave open. Small on purpose: add a rule only for a resource that cannot be
 * closed from here (a third-party library's), for the one file and the exact creator, and say why.
 */
export const ALLOWED_LEAKS: readonly AllowRule[] = [
  {
    family: 'timer',
    createdBy: /\/node_modules\/(@vitest\/|vitest\/)/,
    reason:
      'vitest’s own timers: the timeout of the very hook running this check, and its worker RPC ' +
      'calls; vitest clears them after the file',
  },
];

const tracker = new ResourceTracker().start();
const baseline = process.getActiveResourcesInfo();
const baselineFiles = openFiles();

// biome-ignore lint/correctness/noEmptyPattern: vitest 4 refuses a hook whose first parameter (the fixtures) is not destructured
beforeAll(({}, suite) => {
  const file = relative(process.cwd(), suite.file.filepath).split('\\').join('/');
  return async () => {
    const started = Date.now();
    try {
      const leaks = await settleLeaks(
        () => ({
          baseline,
          current: process.getActiveResourcesInfo(),
          live: tracker.liveResources(),
          baselineFiles,
          currentFiles: openFiles(),
        }),
        ALLOWED_LEAKS,
        file,
        {
          timeoutMs: SETTLE_MS,
          intervalMs: POLL_MS,
          sleep: (ms) => new Promise((resolve) => tracker.untracked(() => setTimeout(resolve, ms))),
        },
      );
      if (leaks.length > 0) throw new Error(formatLeaks(file, leaks, Date.now() - started));
    } finally {
      tracker.stop();
    }
  };
});
