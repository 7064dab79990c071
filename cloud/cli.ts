import { parseArgs } from 'node:util';
import pino from 'pino';
import { SystemdNotifier } from '../daemon/health/sd-notify.ts';
import { ScreamwatchError } from '../protocol/errors.ts';
import { CloudApp } from './app.ts';
import { type CloudCliOverrides, loadCloudConfig } from './config/schema.ts';
import { CloudError } from './errors.ts';

const USAGE = `usage: screamwatch cloud [--config FILE] [--mqtt-port PORT] [--http-port PORT] [--data-dir DIR] [--broker mqtt://HOST:PORT]
       screamwatch cloud hash-password      (reads a password on stdin, prints an scrypt hash for mqtt.sensors[].passwordHash)

Runs the cloud bridge: MQTT ingest (embedded broker unless --broker), alerts, event store
(SQLite under --data-dir unless MONGODB_URI is set) and the dashboard.
Every config key can also be set as SCREAMWATCH_<KEY_PATH>, e.g. SCREAMWATCH_ALERTS_TWILIO_AUTH_TOKEN.`;

function port(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new CloudError('CLOUD_USAGE', `--${name}: "${v}" is not a port number`);
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

/** `screamwatch cloud ...`: returns the exit code once the bridge has stopped (SIGINT/SIGTERM). */
export async function runCloudCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'hash-password') return hashPasswordCommand();
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
  const bootLogger = pino({ level: 'info' });
  let app: CloudApp;
  const notifier = new SystemdNotifier(bootLogger);
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
    app = new CloudApp({ config, logger: pino({ level: config.log.level }) });
    await app.start();
  } catch (err) {
    const code = err instanceof ScreamwatchError ? err.code : 'CLOUD_START_FAILED';
    bootLogger.fatal({ code, err: (err as Error).message }, 'cloud bridge failed to start');
    return 1;
  }

  notifier.ready();
  const watchdog =
    notifier.watchdogIntervalMs > 0
      ? setInterval(() => notifier.watchdog(), notifier.watchdogIntervalMs)
      : null;
  return new Promise<number>((resolve) => {
    let signalled = false;
    const shutdown = (signal: string) => {
      if (signalled) return; // a second SIGTERM does not run shutdown twice
      signalled = true;
      app.logger.info({ signal }, 'shutting down');
      notifier.stopping();
      if (watchdog) clearInterval(watchdog);
      void app.stop().then(() => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        resolve(0);
      });
    };
    const onInt = () => shutdown('SIGINT');
    const onTerm = () => shutdown('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
}
