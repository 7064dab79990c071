import { createRequire } from 'node:module';
import type { Logger } from 'pino';

interface SdNotifyModule {
  ready(): void;
  watchdog(): void;
  /** The native binding; takes the pid like sd_pid_notify(3). */
  stopping?(pid: number): void;
  sendState?(state: string): void;
  sendStatus?(text: string): void;
}

/**
 * systemd notifications through the optional `sd-notify` package (native, libsystemd).
 * Everything is a no-op when NOTIFY_SOCKET is unset (not under systemd, tests, the CLI)
 * or when the package did not build: the daemon and the bridge must run the same without systemd.
 */
export class SystemdNotifier {
  private readonly mod: SdNotifyModule | null;
  private lastWatchdog = 0;
  /** A quarter of WatchdogSec (sd_watchdog_enabled(3) asks for at least every half); 0 without a watchdog. */
  readonly watchdogIntervalMs: number;
  readySent = false;

  constructor(
    private readonly logger: Logger,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.mod = null;
    const usec = Number(env.WATCHDOG_USEC);
    this.watchdogIntervalMs = Number.isFinite(usec) && usec > 0 ? usec / 4000 : 0;
    if (!env.NOTIFY_SOCKET) return;
    try {
      this.mod = createRequire(import.meta.url)('sd-notify') as SdNotifyModule;
    } catch (err) {
      logger.warn(
        { err: (err as Error).message },
        'NOTIFY_SOCKET is set but the sd-notify package is not available; systemd notifications disabled (use Type=simple)',
      );
    }
  }

  get active(): boolean {
    return this.mod !== null;
  }

  ready(): void {
    if (this.readySent) return;
    this.readySent = true;
    this.call(() => this.mod?.ready());
  }

  /** Called from the analysis loop; rate-limited to the watchdog interval. */
  watchdog(nowMs: number = Date.now()): void {
    if (!this.mod || this.watchdogIntervalMs === 0) return;
    if (nowMs - this.lastWatchdog < this.watchdogIntervalMs) return;
    this.lastWatchdog = nowMs;
    this.call(() => this.mod?.watchdog());
  }

  /**
   * WATCHDOG=1 every interval while `condition()` holds (the bridge: always; the daemon: while a
   * missing microphone is being retried). Returns the canceller; a no-op without a watchdog.
   */
  pingWhile(condition: () => boolean = () => true): () => void {
    if (this.watchdogIntervalMs === 0) return () => {};
    const timer = setInterval(() => {
      if (condition()) this.watchdog();
    }, this.watchdogIntervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  stopping(): void {
    this.call(() => this.mod?.stopping?.(process.pid));
  }

  status(text: string): void {
    this.call(() => this.mod?.sendStatus?.(text));
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'sd_notify failed');
    }
  }
}
