import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type NamedService, ServiceRunner, type StopTier } from '../../runtime/lifecycle.ts';

const TIERS: StopTier[] = [
  { name: 'network', budgetMs: 1000 },
  { name: 'processing', budgetMs: 2000 },
  { name: 'storage', budgetMs: 500 },
];

function silentLogger() {
  const lines: { level: string; obj: object; msg: string }[] = [];
  const at = (level: string) => (obj: object, msg: string) => lines.push({ level, obj, msg });
  return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

/** A service that records its calls in `log`; start/stop behaviour can be replaced. */
function fake(
  name: string,
  tier: string,
  log: string[],
  over: Partial<Pick<NamedService, 'start' | 'stop'>> = {},
): NamedService {
  return {
    name,
    tier,
    start: over.start ?? (async () => void log.push(`start ${name}`)),
    stop: over.stop ?? (async () => void log.push(`stop ${name}`)),
  };
}

/** Resolves after `ms` of (fake) time. */
const elapse = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('ServiceRunner', () => {
  it('starts in order and stops tier by tier (network first, storage last)', async () => {
    const log: string[] = [];
    const runner = new ServiceRunner({
      services: [
        fake('store', 'storage', log),
        fake('alerts', 'processing', log),
        fake('broker', 'network', log),
        fake('web', 'network', log),
      ],
      tiers: TIERS,
      logger: silentLogger().logger,
    });
    await runner.start();
    expect(runner.runningNames).toEqual(['store', 'alerts', 'broker', 'web']);
    await runner.stop();
    expect(log).toEqual([
      'start store',
      'start alerts',
      'start broker',
      'start web',
      // a tier's services are stopped together, last started first
      'stop web',
      'stop broker',
      'stop alerts',
      'stop store',
    ]);
    expect(runner.runningNames).toEqual([]);
  });

  it('a failing start rolls back what started, in reverse, and rejects with its error', async () => {
    const log: string[] = [];
    const { logger, lines } = silentLogger();
    const boom = Object.assign(new Error('cannot listen'), { code: 'CLOUD_BROKER_LISTEN_FAILED' });
    const runner = new ServiceRunner({
      services: [
        fake('store', 'storage', log),
        fake('alerts', 'processing', log),
        fake('geo', 'processing', log),
        fake('broker', 'network', log, {
          start: async () => {
            log.push('start broker');
            throw boom;
          },
        }),
        fake('web', 'network', log),
      ],
      tiers: TIERS,
      logger,
    });
    await expect(runner.start()).rejects.toBe(boom);
    // not tier order: exactly the reverse of the start order; the failed one is not stopped
    expect(log).toEqual([
      'start store',
      'start alerts',
      'start geo',
      'start broker',
      'stop geo',
      'stop alerts',
      'stop store',
    ]);
    expect(lines.find((l) => l.level === 'error')).toMatchObject({
      obj: { service: 'broker', code: 'CLOUD_BROKER_LISTEN_FAILED', err: 'cannot listen' },
      msg: 'broker failed to start',
    });
    await runner.stop(); // harmless after a failed start
    expect(log).toHaveLength(7);
  });

  it('stop() during start aborts the running start (its signal), rolls back, start rejects START_ABORTED', async () => {
    const log: string[] = [];
    let seen: AbortSignal | null = null;
    const runner = new ServiceRunner({
      services: [
        fake('store', 'storage', log),
        fake('broker', 'network', log, {
          // a start that waits (a broker connect) until it is aborted
          start: (signal) =>
            new Promise<void>((_resolve, reject) => {
              seen = signal;
              log.push('start broker');
              signal.addEventListener('abort', () => reject(new Error('connect aborted')));
            }),
        }),
        fake('web', 'network', log),
      ],
      tiers: TIERS,
      logger: silentLogger().logger,
      abortedCode: 'DAEMON_START_ABORTED',
    });
    const starting = runner.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(log).toEqual(['start store', 'start broker']);
    const stopping = runner.stop();
    await expect(starting).rejects.toMatchObject({
      code: 'DAEMON_START_ABORTED',
      message: 'start aborted before broker',
    });
    await stopping;
    expect(seen!.aborted).toBe(true);
    expect(log).toEqual(['start store', 'start broker', 'stop store']);
  });

  it('a start that ignores the signal is not followed by further starts', async () => {
    const log: string[] = [];
    const runner = new ServiceRunner({
      services: [
        fake('outbox', 'storage', log),
        fake('publisher', 'network', log, {
          start: async () => {
            await elapse(100);
            log.push('start publisher');
          },
        }),
        fake('capture', 'network', log),
      ],
      tiers: TIERS,
      logger: silentLogger().logger,
    });
    const starting = runner.start();
    const rejected = expect(starting).rejects.toMatchObject({ code: 'START_ABORTED' });
    await vi.advanceTimersByTimeAsync(10); // the publisher is starting
    const stopping = runner.stop();
    await vi.advanceTimersByTimeAsync(100);
    await rejected;
    await stopping;
    expect(log).toEqual(['start outbox', 'start publisher', 'stop publisher', 'stop outbox']);
  });

  it('a start that hangs past its tier budget does not hold up the stop; it is stopped once it returns', async () => {
    const log: string[] = [];
    const { logger, lines } = silentLogger();
    let finishStart!: () => void;
    const runner = new ServiceRunner({
      services: [
        fake('store', 'storage', log),
        fake('broker', 'network', log, {
          // a connect that ignores the abort signal
          start: () =>
            new Promise<void>((resolve) => {
              log.push('start broker');
              finishStart = resolve;
            }),
        }),
      ],
      tiers: TIERS,
      logger,
    });
    const starting = runner.start();
    const rejected = expect(starting).rejects.toMatchObject({ code: 'START_ABORTED' });
    await vi.advanceTimersByTimeAsync(10);
    let stopped = false;
    const stopping = runner.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(1); // the network tier's 1000 ms
    await stopping;
    expect(log).toEqual(['start store', 'start broker', 'stop store']);
    expect(lines.find((l) => l.level === 'warn')?.msg).toBe(
      'stop: broker is still starting after 1000 ms; stopping the rest',
    );
    finishStart();
    await rejected;
    expect(log).toEqual(['start store', 'start broker', 'stop store', 'stop broker']);
  });

  it('each tier gets its budget: a hung stop is left behind after it, the next tiers still stop', async () => {
    const log: string[] = [];
    const { logger, lines } = silentLogger();
    const runner = new ServiceRunner({
      services: [
        fake('store', 'storage', log),
        fake('alerts', 'processing', log, {
          stop: async () => {
            await elapse(1500); // inside the processing budget (2000)
            log.push('stop alerts');
          },
        }),
        fake('broker', 'network', log, { stop: () => new Promise<void>(() => {}) }), // never stops
        fake('web', 'network', log),
      ],
      tiers: TIERS,
      logger,
    });
    await runner.start();
    let done = false;
    const stopping = runner.stop().then(() => (done = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(log.slice(4)).toEqual(['stop web']); // the network tier waits for the broker...
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1); // ...for its 1000 ms, then moves on
    expect(lines.find((l) => l.level === 'warn')).toMatchObject({
      obj: { tier: 'network', budgetMs: 1000, services: ['broker'] },
    });
    await vi.advanceTimersByTimeAsync(1499);
    expect(log.slice(4)).toEqual(['stop web']);
    await vi.advanceTimersByTimeAsync(1);
    expect(log.slice(4)).toEqual(['stop web', 'stop alerts', 'stop store']);
    await stopping;
    expect(done).toBe(true);
    expect(vi.getTimerCount()).toBe(0); // no budget timer left behind
  });

  it('a stop that throws is logged and the others still stop', async () => {
    const log: string[] = [];
    const { logger, lines } = silentLogger();
    const runner = new ServiceRunner({
      services: [
        fake('store', 'storage', log),
        fake('web', 'network', log, {
          stop: async () => {
            throw new Error('close failed');
          },
        }),
      ],
      tiers: TIERS,
      logger,
    });
    await runner.start();
    await runner.stop();
    expect(log).toEqual(['start store', 'start web', 'stop store']);
    expect(lines.find((l) => l.level === 'warn')).toMatchObject({
      obj: { service: 'web', err: 'close failed' },
      msg: 'stop: web failed to stop',
    });
  });

  it('a second stop() (second signal) does not stop anything twice', async () => {
    const log: string[] = [];
    const runner = new ServiceRunner({
      services: [fake('store', 'storage', log), fake('web', 'network', log)],
      tiers: TIERS,
      logger: silentLogger().logger,
    });
    await runner.start();
    const first = runner.stop();
    const second = runner.stop();
    expect(second).toBe(first);
    await Promise.all([first, second]);
    expect(log).toEqual(['start store', 'start web', 'stop web', 'stop store']);
  });

  it('stop() before start(): start then rejects at once and starts nothing', async () => {
    const log: string[] = [];
    const runner = new ServiceRunner({
      services: [fake('store', 'storage', log)],
      tiers: TIERS,
      logger: silentLogger().logger,
    });
    await runner.stop();
    await expect(runner.start()).rejects.toMatchObject({ code: 'START_ABORTED' });
    expect(log).toEqual([]);
  });

  it('refuses a service in an unknown tier or listed twice', () => {
    const logger = silentLogger().logger;
    expect(() => new ServiceRunner({ services: [fake('a', 'nope', [])], tiers: TIERS, logger })).toThrow(
      /unknown stop tier nope/,
    );
    expect(
      () =>
        new ServiceRunner({
          services: [fake('a', 'storage', []), fake('a', 'storage', [])],
          tiers: TIERS,
          logger,
        }),
    ).toThrow(/listed twice/);
  });
});
