import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  type AllowRule,
  findLeaks,
  formatLeaks,
  type LeakInput,
  type LiveResource,
  ResourceTracker,
  settleLeaks,
} from './leaked-resources.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FILE = 'test/x.test.ts';

function input(over: Partial<LeakInput>): LeakInput {
  return { baseline: [], current: [], live: [], baselineFiles: [], currentFiles: [], ...over };
}

const server: LiveResource = {
  type: 'TCPSERVERWRAP',
  refed: true,
  frames: ['Server.listen (node:net:2000:10)', 'startBroker (/repo/test/support/aedes.ts:12:5)'],
};
const vitestTimer: LiveResource = {
  type: 'Timeout',
  refed: false,
  frames: [
    'setTimeout (node:timers:163:19)',
    'file:///repo/node_modules/@vitest/runner/dist/chunk.js:2273:18',
  ],
};

describe('findLeaks (pure: before/after lists in, leaks out)', () => {
  it('reports what getActiveResourcesInfo() counts beyond the baseline, by family', () => {
    const leaks = findLeaks(
      input({
        baseline: ['PipeWrap', 'PipeWrap', 'Timeout'],
        current: ['PipeWrap', 'PipeWrap', 'Timeout', 'Timeout', 'TCPServerWrap'],
      }),
      [],
      FILE,
    );
    expect(leaks.map((l) => [l.family, l.type])).toEqual([
      ['timer', 'Timeout'],
      ['tcp server', 'TCPServerWrap'],
    ]);
  });

  it('a tracked resource is reported with its creator, once, even when it also keeps the loop alive', () => {
    const leaks = findLeaks(input({ current: ['TCPServerWrap'], live: [server] }), [], FILE);
    expect(leaks).toEqual([
      { family: 'tcp server', type: 'TCPSERVERWRAP', refed: true, frames: server.frames },
    ]);
  });

  it('an unref’d timer is a leak too (getActiveResourcesInfo() cannot see it)', () => {
    const timer: LiveResource = {
      type: 'Timeout',
      refed: false,
      frames: ['Monitor.start (/repo/daemon/m.ts:1:1)'],
    };
    expect(findLeaks(input({ live: [timer] }), [], FILE)).toMatchObject([{ family: 'timer', refed: false }]);
  });

  it('allow rules match the creating frame (not any frame), the family and the file', () => {
    const vitestOwn: AllowRule = { family: 'timer', createdBy: /\/node_modules\/@vitest\//, reason: 'r' };
    // allowed, and still accounts for the active Timeout it is (the hook timeout is ref'd)
    const hookTimeout = { ...vitestTimer, refed: true };
    expect(findLeaks(input({ current: ['Timeout'], live: [hookTimeout] }), [vitestOwn], FILE)).toEqual([]);
    // a server created inside a test has vitest's frames below the test's: still a leak
    const inTest = {
      ...server,
      frames: [...server.frames, 'runTest (/repo/node_modules/@vitest/runner/x.js:1:1)'],
    };
    const anyTcp: AllowRule = { family: 'tcp server', createdBy: /\/node_modules\/@vitest\//, reason: 'r' };
    expect(findLeaks(input({ live: [inTest] }), [anyTcp], FILE)).toHaveLength(1);
    const forOther: AllowRule = {
      family: 'tcp server',
      createdBy: /aedes\.ts/,
      file: 'test/y.test.ts',
      reason: 'r',
    };
    expect(findLeaks(input({ live: [server] }), [forOther], FILE)).toHaveLength(1);
    expect(findLeaks(input({ live: [server] }), [{ ...forOther, file: FILE }], FILE)).toEqual([]);
  });

  it('regular files open now and not at the start are leaks, unless a tracked file handle names them', () => {
    const leaks = findLeaks(
      input({
        baselineFiles: ['/repo/node_modules/x.node'],
        currentFiles: [
          '/repo/node_modules/x.node',
          '/tmp/a/events.sqlite',
          '/tmp/a/events.sqlite',
          '/tmp/b.txt',
        ],
        live: [{ type: 'FILEHANDLE', refed: undefined, frames: [], detail: '/tmp/b.txt' }],
      }),
      [],
      FILE,
    );
    expect(leaks.map((l) => `${l.family} ${l.detail}`)).toEqual([
      'file handle /tmp/b.txt',
      'open file /tmp/a/events.sqlite',
      'open file /tmp/a/events.sqlite',
    ]);
  });

  it('the message names the kinds and where each was created', () => {
    const text = formatLeaks(
      FILE,
      findLeaks(input({ live: [server, vitestTimer] }), [], FILE),
      2000,
      '/repo',
    );
    expect(text).toContain(
      `${FILE} left open after its tests and hooks (waited 2000 ms): 1 tcp server, 1 timer`,
    );
    expect(text).toContain('- tcp server (TCPSERVERWRAP)\n    at startBroker (test/support/aedes.ts:12:5)');
    expect(text).toContain('- timer (Timeout, unref’d)');
  });
});

describe('settleLeaks (bounded wait)', () => {
  const leaking = input({ live: [server] });
  function clock() {
    let t = 0;
    return {
      now: () => t,
      sleep: async (ms: number) => {
        t += ms;
      },
    };
  }

  it('returns nothing as soon as what was closing has closed', async () => {
    const c = clock();
    let polls = 0;
    const leaks = await settleLeaks(() => (++polls < 4 ? leaking : input({})), [], FILE, {
      timeoutMs: 2000,
      intervalMs: 25,
      ...c,
    });
    expect(leaks).toEqual([]);
    expect([polls, c.now()]).toEqual([4, 75]);
  });

  it('gives up after timeoutMs and returns what is still open', async () => {
    const c = clock();
    let polls = 0;
    const sample = () => {
      polls += 1;
      return leaking;
    };
    const leaks = await settleLeaks(sample, [], FILE, {
      timeoutMs: 2000,
      intervalMs: 25,
      ...c,
    });
    expect(leaks).toHaveLength(1);
    expect(c.now()).toBe(2000);
    expect(polls).toBe(81);
  });
});

describe('ResourceTracker (async_hooks)', () => {
  it('sees a server and an unref’d interval from creation to close, with the creating line', async () => {
    const tracker = new ResourceTracker().start();
    try {
      const srv = createServer();
      await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
      const interval = setInterval(() => {}, 60_000).unref();
      const live = tracker.liveResources();
      const mine = (type: string) =>
        live.find((r) => r.type === type && r.frames.some((f) => f.includes('leak-check.test.ts')));
      expect(mine('TCPSERVERWRAP')).toMatchObject({ refed: true });
      expect(mine('Timeout')).toMatchObject({ refed: false });
      clearInterval(interval);
      await new Promise<void>((resolve) => srv.close(() => resolve()));
      const gone = await settleLeaks(
        () =>
          input({
            live: tracker
              .liveResources()
              .filter((r) => r.frames.some((f) => f.includes('leak-check.test.ts'))),
          }),
        [],
        FILE,
        {
          timeoutMs: 2000,
          intervalMs: 25,
          sleep: (ms) => new Promise((r) => tracker.untracked(() => setTimeout(r, ms))),
        },
      );
      expect(gone).toEqual([]);
    } finally {
      tracker.stop();
    }
  });
});

describe('the setup file, through vitest', () => {
  it('fails a file that leaves a server and an interval open, naming both and their lines; passes a tidy one', async () => {
    const result = await run(
      process.execPath,
      [
        join(ROOT, 'node_modules/vitest/vitest.mjs'),
        'run',
        '--config',
        'test/support/leak-fixtures/vitest.config.ts',
      ],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, timeout: 60_000 },
    ).then(
      () => ({ code: 0, out: '' }),
      (err: { code: number; stdout: string; stderr: string }) => ({
        code: err.code,
        out: err.stdout + err.stderr,
      }),
    );
    expect(result.code, result.out).toBe(1);
    expect(result.out).toContain(
      'test/support/leak-fixtures/leaky.fixture.ts left open after its tests and hooks',
    );
    expect(result.out).toMatch(
      /- tcp server \(TCPSERVERWRAP\)\n {4}listening on 127\.0\.0\.1:\d+\n {4}at test\/support\/leak-fixtures\/leaky\.fixture\.ts:6:\d+/,
    );
    expect(result.out).toMatch(
      /- timer \(Timeout, unref’d\)\n {4}at test\/support\/leak-fixtures\/leaky\.fixture\.ts:7:\d+/,
    );
    expect(result.out).not.toContain('tidy.fixture.ts left open');
    // both tests passed; the leaky file still counts as a failure in the line CI reads
    expect(result.out).toMatch(/\n2 passed, 1 failed\n/);
  });
});
