import { parseArgs } from 'node:util';
import pino from 'pino';
import { exitCodeFor, ScreamwatchError } from '../protocol/errors.ts';
import { journaldAware } from '../runtime/journald.ts';
import { SystemdNotifier } from '../runtime/sd-notify.ts';
import { ShutdownRequest } from '../runtime/shutdown.ts';
import { CloudApp } from './app.ts';
import { type CloudCliOverrides, loadCloudConfig } from './config/schema.ts';
import { CloudError } from './errors.ts';

const USAGE = `usage: screamwatch cloud [--config FILE] [--mqtt-port PORT] [--http-port PORT] [--data-dir DIR] [--broker mqtt://HOST:PORT]
       screamwatch cloud hash-password      (reads a password on stdin, prints an scrypt hash for mqtt.sensors[].passwordHash)
       screamwatch cloud backup --out DIR [--config FILE] [--data-dir DIR]
                                            (online copy of events.sqlite + alerts.sqlite into the new directory DIR)

Runs the cloud bridge: MQTT ingest (embedded broker unless --broker), alerts, event store
(SQLite under --data-dir unless MONGODB_URI is set) and the dashboard.
Every config key can also be set as SCREAMWATCH_<KEY_PATH>, e.g. SCREAMWATCH_ALERTS_TWILIO_AUTH_TOKEN.`;

function port(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new CloudError('CLI_USAGE', `--${name}: "${v}" is not a port number`);
  return n;
}

async function hashPasswordCommand(): Promise<number> {
  const { hashPassword } = await import('./auth/passwords.ts');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const password = Buffer.concat(chunks)
    .toString()
    .replace(/\r?\n$/, '');
  if (password.length < 8) {
    process.stderr.write('password must be at least 8 characters\n');
    return 2;
  }
  process.stdout.write(`${await hashPassword(password)}\n`);
  return 0;
}

/**
 * `screamwatch cloud backup --out DIR`: the SQLite event store and alert state, copied online
 * (the bridge may be running) into DIR (cloud/store/backup.ts). With MONGODB_URI the data is in
 * MongoDB: refused, pointing at mongodump.
 */
async function backupCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        out: { type: 'string', short: 'o' },
        config: { type: 'string', short: 'c' },
        'data-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    if (typeof values.out !== 'string' || values.out === '')
      throw new CloudError('CLI_USAGE', 'backup needs --out DIR (a new or empty directory)');
    if (env.MONGODB_URI)
      throw new CloudError(
        'CLOUD_BACKUP_MONGODB',
        'MONGODB_URI is set: the events and the alert state are in MongoDB, not in SQLite files. Back them up with mongodump, e.g. mongodump --uri "$MONGODB_URI" --gzip --out DIR (README: Backups)',
      );
    const dataDir = (values['data-dir'] as string | undefined) ?? env.STATE_DIRECTORY?.split(':')[0];
    const config = loadCloudConfig({
      file: (values.config as string | undefined) ?? null,
      env,
      overrides: dataDir === undefined ? {} : { dataDir },
    });
    const { backupSqlite } = await import('./store/backup.ts');
    const result = await backupSqlite({ dataDir: config.dataDir, out: values.out });
    for (const f of result.files)
      process.stdout.write(
        `${f.source} -> ${result.out}/${f.file}: ${f.rows} ${f.file === 'events.sqlite' ? 'events' : 'alert jobs'}, schema version ${f.schemaVersion}, ${f.bytes} bytes\n`,
      );
    process.stdout.write(`backup complete: ${result.out} (manifest.json, taken ${result.takenAt})\n`);
    return 0;
  } catch (err) {
    const code = err instanceof ScreamwatchError ? err.code : 'CLOUD_BACKUP_FAILED';
    process.stderr.write(`screamwatch cloud backup: [${code}] ${(err as Error).message}\n`);
    return exitCodeFor(err);
  }
}

/** `screamwatch cloud ...`: returns the exit code once the bridge has stopped (SIGINT/SIGTERM). */
export async function runCloudCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'hash-password') return hashPasswordCommand();
  if (argv[0] === 'backup') return backupCommand(argv.slice(1), process.env);
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        'mqtt-port': { type: 'string' },
        'http-port': { type: 'string' },
        'data-dir': { type: 'string' },
        broker: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // `<N>` syslog priority prefixes under systemd: `journalctl -p err` shows errors only
  const bootLogger = pino({ level: 'info' }, journaldAware(pino.destination({ dest: 1, sync: true })));
  let app: CloudApp;
  let reloadOverrides: CloudCliOverrides = {};
  try {
    const overrides: CloudCliOverrides = {
      mqttPort: port('mqtt-port', values['mqtt-port'] as string | undefined),
      httpPort: port('http-port', values['http-port'] as string | undefined),
      dataDir: (values['data-dir'] as string | undefined) ?? process.env.STATE_DIRECTORY?.split(':')[0],
      broker: values.broker as string | undefined,
    };
    for (const k of Object.keys(overrides) as (keyof CloudCliOverrides)[])
      if (overrides[k] === undefined) delete overrides[k];
    const config = loadCloudConfig({ file: (values.config as string | undefined) ?? null, overrides });
    reloadOverrides = overrides;
    app = new CloudApp({
      config,
      logger: pino({ level: config.log.level }, journaldAware(pino.destination({ dest: 1, sync: true }))),
    });
  } catch (err) {
    return failedToStart(bootLogger, err);
  }
  const logger = app.logger;
  const notifier = new SystemdNotifier(logger);
  let stopPings = () => {};
  // Installed before start: a SIGTERM while starting aborts the start (what started is
  // stopped again). Left installed afterwards (they only log then) so that a late second
  // signal cannot kill a process that has finished shutting down (cloud/main.ts exits at once).
  const shutdown = new ShutdownRequest();
  shutdown.handleSignals({
    onFirst: (signal) => logger.info({ signal }, 'shutting down'),
    onRepeat: (signal) => logger.warn({ signal }, 'shutdown already in progress'),
  });
  const stopped = shutdown.requested.then(async () => {
    notifier.stopping();
    stopPings();
    await app.stop();
  });
  try {
    await app.start();
  } catch (err) {
    if (shutdown.isRequested && (err as ScreamwatchError).code === 'CLOUD_START_ABORTED') {
      await stopped;
      return 0;
    }
    return failedToStart(logger, err);
  }
  notifier.ready();
  stopPings = notifier.pingWhile();
  // SIGHUP (systemd ExecReload=): re-read the config file, take the sensors and credentials.
  const configFile = (values.config as string | undefined) ?? null;
  const onHangup = () => {
    try {
      app.reload(loadCloudConfig({ file: configFile, overrides: reloadOverrides }));
    } catch (err) {
      // A bad file keeps the running config (and says why), as at boot but without exiting.
      logger.error(
        { code: (err as ScreamwatchError).code ?? 'CLOUD_CONFIG_INVALID', err: (err as Error).message },
        'config reload refused; the running config stays',
      );
    }
  };
  process.on('SIGHUP', onHangup);
  await stopped;
  process.off('SIGHUP', onHangup);
  return 0;
}

function failedToStart(logger: pino.Logger, err: unknown): number {
  const code = err instanceof ScreamwatchError ? err.code : 'CLOUD_START_FAILED';
  logger.fatal({ code, err: (err as Error).message }, 'cloud bridge failed to start');
  process.stderr.write(`screamwatch cloud: [${code}] ${(err as Error).message}\n`);
  return exitCodeFor(err);
}
