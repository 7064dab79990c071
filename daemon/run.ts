import pino, { type Logger } from 'pino';
import { exitCodeFor, type ScreamwatchError } from '../protocol/errors.ts';
import { journaldAware } from '../runtime/journald.ts';
import { ShutdownRequest } from '../runtime/shutdown.ts';
import { DaemonApp, type DaemonAppOptions } from './app.ts';
import type { DaemonConfig } from './config/schema.ts';

export function createLogger(config: Pick<DaemonConfig, 'log' | 'sensorId'>): Logger {
  return pino(
    {
      level: config.log.level,
      base: { sensorId: config.sensorId },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    // `<N>` syslog priority prefixes under systemd: `journalctl -p err` shows errors only
    journaldAware(pino.destination({ dest: 1, sync: true })),
  );
}

export interface RunDaemonOptions extends Partial<Omit<DaemonAppOptions, 'config'>> {
  /** With a file source: seconds to wait for the broker to acknowledge everything at the end. */
  drainTimeoutS?: number;
  /** Install SIGTERM/SIGINT handlers (the process entry points do; tests drive stop()). */
  handleSignals?: boolean;
  /** Receives the app once started (tests, benchmarks). */
  onStarted?: (app: DaemonApp) => void;
  /** Resolve to stop the daemon (tests); signals do the same. */
  stopSignal?: Promise<unknown>;
}

/**
 * Runs the daemon until SIGTERM/SIGINT (or, for a file source, until the file was replayed
 * and the outbox drained or the drain timeout passed). Returns the process exit code.
 */
export async function runDaemon(config: DaemonConfig, options: RunDaemonOptions = {}): Promise<number> {
  const logger = options.logger ?? createLogger(config);
  const app = new DaemonApp({ ...options, config, logger });
  const shutdown = new ShutdownRequest();
  if (options.handleSignals) {
    // Left installed after shutdown (they only log then): a second SIGTERM arriving after
    // shutdown finished but before the process exits must not kill it with a signal.
    shutdown.handleSignals({
      onFirst: (signal) => logger.info({ signal }, 'shutdown requested'),
      onRepeat: (signal) => logger.warn({ signal }, 'shutdown already in progress'),
    });
  }
  void options.stopSignal?.then(() => shutdown.request('requested'));
  const fileSource = config.audio.source.startsWith('file:');
  app.once('source-end', () => {
    const timeoutS = options.drainTimeoutS ?? 30;
    const depth = app.outbox.depth;
    if (depth > 0) {
      process.stderr.write(
        `screamwatch daemon: file done; waiting up to ${timeoutS} s for the broker to acknowledge ${depth} outbox row(s)\n`,
      );
    }
    void app.publisher.waitForEmpty(timeoutS * 1000).then((empty) => {
      if (!empty) {
        process.stderr.write(
          `screamwatch daemon: timed out after ${timeoutS} s with ${app.outbox.depth} row(s) still in ${app.outbox.path}; they are sent on the next start\n`,
        );
      }
      shutdown.request('file done');
    });
  });
  // A request (signal, file done, the caller) stops the app; while it is still starting, that
  // aborts the start, which then rejects with DAEMON_START_ABORTED: a requested stop, exit 0.
  let finished = false;
  const stopped = shutdown.requested.then(async (reason) => {
    if (finished) return;
    logger.info({ reason }, 'stopping');
    await app.stop();
  });
  try {
    try {
      await app.start();
    } catch (err) {
      if (shutdown.isRequested && (err as ScreamwatchError).code === 'DAEMON_START_ABORTED') {
        await stopped;
        return 0;
      }
      logger.fatal(
        { code: (err as ScreamwatchError).code, err: (err as Error).message },
        'daemon failed to start',
      );
      process.stderr.write(`screamwatch daemon: ${(err as Error).message}\n`);
      return exitCodeFor(err);
    }
    options.onStarted?.(app);
    if (!fileSource) app.beat();
    await stopped;
    return 0;
  } finally {
    // whatever ended the run, a later signal only logs
    finished = true;
    shutdown.request('finished');
  }
}
