import { ScreamwatchError } from '../protocol/errors.ts';

/**
 * Anything long-lived (a capture process, an MQTT client, a store, an HTTP server, timers).
 * `start` may be handed an AbortSignal: a stop that arrives while it runs aborts it, and a
 * start that gives up should reject. A failed `start` must close what it opened itself: the
 * runner only stops services whose start resolved.
 */
export interface Service {
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

/** A service in a runner's list: its name (for logs) and the tier it stops in. */
export interface NamedService extends Service {
  readonly name: string;
  readonly tier: string;
}

/** Stop tiers in stop order (e.g. capture, analysis, network, storage), each with a budget. */
export interface StopTier {
  readonly name: string;
  /** How long the tier's stops may take together before the runner moves on (and logs it). */
  readonly budgetMs: number;
}

/** What the runner logs through; a pino Logger fits. */
export interface LifecycleLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ServiceRunnerOptions {
  /** Started in this order. */
  services: readonly NamedService[];
  tiers: readonly StopTier[];
  logger: LifecycleLogger;
  /** The code of the error start() rejects with when stop() came first (default START_ABORTED). */
  abortedCode?: string;
}

/** The start was aborted by stop(); what had started was stopped again. */
export class StartAbortedError extends ScreamwatchError {
  constructor(before: string, code = 'START_ABORTED') {
    super(code, `start aborted before ${before}`, { before });
    this.name = 'StartAbortedError';
  }
}

function errorFields(err: unknown): { err: string; code?: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return {
    err: err instanceof Error ? err.message : String(err),
    ...(typeof code === 'string' && { code }),
  };
}

/**
 * One lifecycle for the daemon and the bridge: services start in order; if one fails (or a
 * stop aborts the start), those already started are stopped again in reverse. stop() runs in
 * tiers (the tiers' order, all services of a tier at once, each tier within its budget), is
 * idempotent (a second SIGTERM gets the same promise) and can be called at any time: before,
 * during or after start.
 */
export class ServiceRunner {
  private readonly services: readonly NamedService[];
  private readonly tiers: readonly StopTier[];
  private readonly logger: LifecycleLogger;
  private readonly abortedCode: string | undefined;
  private readonly abort = new AbortController();
  /** Started services, in start order. */
  private readonly running: NamedService[] = [];
  private starting: Promise<void> | null = null;
  /** The service whose start() is running now. */
  private current: NamedService | null = null;
  /** Services whose stop() was called (a late start's rollback and stop() never both stop one). */
  private readonly stopCalled = new Set<NamedService>();
  private stopping: Promise<void> | null = null;

  constructor(options: ServiceRunnerOptions) {
    this.services = options.services;
    this.tiers = options.tiers;
    this.logger = options.logger;
    this.abortedCode = options.abortedCode;
    const tierNames = new Set(this.tiers.map((t) => t.name));
    const names = new Set<string>();
    for (const s of this.services) {
      if (!tierNames.has(s.tier)) throw new Error(`service ${s.name}: unknown stop tier ${s.tier}`);
      if (names.has(s.name)) throw new Error(`service ${s.name} is listed twice`);
      names.add(s.name);
    }
  }

  /** Aborted once stop() was called. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Names of the services running now, in start order. */
  get runningNames(): string[] {
    return this.running.map((s) => s.name);
  }

  isRunning(name: string): boolean {
    return this.running.some((s) => s.name === name);
  }

  /**
   * Starts every service in order. Rejects with the failing service's error (after rolling
   * back), or with START_ABORTED when stop() came first.
   */
  start(): Promise<void> {
    if (this.starting) throw new Error('ServiceRunner.start() called twice');
    this.starting = this.startAll();
    return this.starting;
  }

  private async startAll(): Promise<void> {
    const signal = this.abort.signal;
    for (const service of this.services) {
      if (signal.aborted) {
        await this.rollback();
        throw new StartAbortedError(service.name, this.abortedCode);
      }
      try {
        this.current = service;
        await service.start(signal);
      } catch (err) {
        if (signal.aborted) {
          // the stop that aborted us explains the failure better than the service can
          await this.rollback();
          throw new StartAbortedError(service.name, this.abortedCode);
        }
        this.logger.error({ service: service.name, ...errorFields(err) }, `${service.name} failed to start`);
        await this.rollback();
        throw err;
      } finally {
        this.current = null;
      }
      this.running.push(service);
    }
    if (signal.aborted) {
      await this.rollback();
      throw new StartAbortedError('the end of start', this.abortedCode);
    }
  }

  /** Reverse start order, one at a time, each within its tier's budget. */
  private async rollback(): Promise<void> {
    while (this.running.length) {
      const service = this.running.pop()!;
      await this.stopWithin([service], this.budgetOf(service.tier), service.tier, 'rollback');
    }
  }

  private budgetOf(tier: string): number {
    return this.tiers.find((t) => t.name === tier)!.budgetMs;
  }

  /**
   * Aborts a start still running and waits for it to settle (its own rollback), then stops
   * what runs tier by tier. A second call returns the first call's promise.
   */
  stop(): Promise<void> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  private async stopAll(): Promise<void> {
    this.abort.abort();
    const current = this.current;
    if (this.starting && current) {
      // The aborted start settles (and rolls back) by itself; a start that ignores the signal
      // gets its tier's budget, then what runs is stopped without it (it is stopped when its
      // start returns, by the rollback).
      const budgetMs = this.budgetOf(current.tier);
      let timer: NodeJS.Timeout | undefined;
      const settled = await Promise.race([
        this.starting.then(
          () => true,
          () => true,
        ),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), budgetMs);
        }),
      ]);
      clearTimeout(timer);
      if (!settled)
        this.logger.warn(
          { service: current.name, budgetMs },
          `stop: ${current.name} is still starting after ${budgetMs} ms; stopping the rest`,
        );
    } else if (this.starting) {
      await this.starting.catch(() => {});
    }
    for (const tier of this.tiers) {
      const members = this.running.filter((s) => s.tier === tier.name).reverse();
      if (!members.length) continue;
      await this.stopWithin(members, tier.budgetMs, tier.name, 'stop');
      for (const s of members) {
        const i = this.running.indexOf(s);
        if (i >= 0) this.running.splice(i, 1);
      }
    }
  }

  private async stopWithin(
    members: NamedService[],
    budgetMs: number,
    tier: string,
    phase: 'stop' | 'rollback',
  ): Promise<void> {
    members = members.filter((s) => !this.stopCalled.has(s));
    for (const s of members) this.stopCalled.add(s);
    if (!members.length) return;
    const pending = new Set(members.map((s) => s.name));
    let timer: NodeJS.Timeout | undefined;
    const outOfTime = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), budgetMs);
    });
    const all = Promise.all(
      members.map(async (s) => {
        try {
          await s.stop();
        } catch (err) {
          this.logger.warn({ service: s.name, ...errorFields(err) }, `${phase}: ${s.name} failed to stop`);
        } finally {
          pending.delete(s.name);
        }
      }),
    );
    try {
      const result = await Promise.race([all, outOfTime]);
      if (result === 'timeout') {
        this.logger.warn(
          { tier, budgetMs, services: [...pending] },
          `${phase}: ${[...pending].join(', ')} did not stop within ${budgetMs} ms; moving on`,
        );
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
