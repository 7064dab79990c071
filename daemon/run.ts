import pino, { type Logger } from 'pino';
import { ScreamwatchError } from '../protocol/errors.ts';
import { DaemonApp, type DaemonAppOptions } from './app.ts';
import type { DaemonConfig } from './config/schema.ts';

/** sysexits EX_CONFIG: the unit file sets RestartPreventExitStatus=78, so bad config does not loop. */
export const EXIT_CONFIG = 78;

const CONFIG_CODES =
  /^(CONFIG_|CLI_|MODEL_|AUDIO_SOURCE_INVALID|AUDIO_READ_FAILED|AUDIO_UNSUPPORTED|AUDIO_EMPTY|AUDIO_CORRUPT|AUDIO_TRUNCATED|MQTT_TLS_FILE_UNREADABLE|OUTBOX_OPEN_FAILED)/;

export function exitCodeFor(err: unknown): number {
  return err instanceof ScreamwatchError && CONFIG_CODES.test(err.code) ? EXIT_CONFIG : 1;
}

export function createLogger(config: Pick<DaemonConfig, 'log' | 'sensorId'>): Logger {
  return pino(
    {
      level: config.log.level,
      base: { sensorId: config.sensorId },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: 1, sync: true }),
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
  let resolveStop!: (reason: string) => void;
  const stopRequested = new Promise<string>((r) => (resolveStop = r));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // a second SIGTERM/SIGINT must not run shutdown twice (and must not kill us mid-flush)
    if (stopping) return logger.warn({ signal }, 'shutdown already in progress');
    stopping = true;
    logger.info({ signal }, 'shutdown requested');
    resolveStop(signal);
  };
  if (options.handleSignals) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  void options.stopSignal?.then(() => resolveStop('requested'));
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
      resolveStop('file done');
    });
  });
  try {
    try {
      await app.start();
    } catch (err) {
      logger.fatal(
        { code: (err as ScreamwatchError).code, err: (err as Error).message },
        'daemon failed to start',
      );
      process.stderr.write(`screamwatch daemon: ${(err as Error).message}\n`);
      return exitCodeFor(err);
    }
    options.onStarted?.(app);
    if (!fileSource) app.beat();
    const reason = await stopRequested;
    stopping = true;
    logger.info({ reason }, 'stopping');
    await app.stop();
    return 0;
  } finally {
    // The signal handlers stay installed (they only log now): a second SIGTERM arriving
    // after shutdown finished but before the process exits must not kill it with a signal.
    stopping = true;
  }
}
