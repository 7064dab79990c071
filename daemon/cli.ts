import { parseArgs } from 'node:util';
import { EXIT_CONFIG, exitCodeFor } from '../protocol/errors.ts';
import { loadDaemonConfig } from './config/load.ts';
import { type RunDaemonOptions, runDaemon } from './run.ts';

export const DAEMON_USAGE = `Usage: screamwatch daemon [options]

Runs the sensor daemon: capture, detect, store in the outbox, publish over MQTT.

Options:
  --config FILE          YAML or JSON config file (SCREAMWATCH_* environment overrides it)
  --source SRC           alsa:DEVICE (e.g. alsa:plughw:CARD=Device,DEV=0) or file:PATH (WAV/MP3)
  --fast                 with file:PATH, analyse as fast as possible instead of real time
  --sensor-id ID         sensor id (topic level), overrides sensorId
  --broker URL           mqtt://HOST:PORT or mqtts://HOST:PORT, overrides mqtt.url
  --state-dir DIR        where outbox.sqlite lives, overrides stateDir
  --drain-timeout S      with a file source: seconds to wait for PUBACKs at the end (default 30)
  -h, --help             this text

Flags override the config file, which overrides the defaults. Exit codes: 0 ok,
78 configuration error (not worth restarting), 1 other failure.`;

/** `screamwatch daemon ...`; returns the exit code. */
export async function runDaemonCommand(argv: string[], options: RunDaemonOptions = {}): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        source: { type: 'string' },
        fast: { type: 'boolean' },
        'sensor-id': { type: 'string' },
        broker: { type: 'string' },
        'state-dir': { type: 'string' },
        'drain-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`screamwatch daemon: ${(err as Error).message}\n\n${DAEMON_USAGE}\n`);
    return EXIT_CONFIG;
  }
  if (values.help) {
    process.stdout.write(`${DAEMON_USAGE}\n`);
    return 0;
  }
  const overrides: Record<string, unknown> = {};
  const audio: Record<string, unknown> = {};
  if (typeof values.source === 'string') audio.source = values.source;
  if (values.fast) audio.fast = true;
  if (Object.keys(audio).length) overrides.audio = audio;
  if (typeof values['sensor-id'] === 'string') overrides.sensorId = values['sensor-id'];
  if (typeof values.broker === 'string') overrides.mqtt = { url: values.broker };
  if (typeof values['state-dir'] === 'string') overrides.stateDir = values['state-dir'];
  let drainTimeoutS = options.drainTimeoutS;
  if (typeof values['drain-timeout'] === 'string') {
    drainTimeoutS = Number(values['drain-timeout']);
    if (!(drainTimeoutS >= 0)) {
      process.stderr.write(
        `screamwatch daemon: --drain-timeout must be a number of seconds, got ${values['drain-timeout']}\n`,
      );
      return EXIT_CONFIG;
    }
  }
  let config: ReturnType<typeof loadDaemonConfig>;
  const file = typeof values.config === 'string' ? values.config : undefined;
  // the same file, environment and flags again, for the remote `reload` command
  const load = () =>
    loadDaemonConfig({ file, env: options.env ?? process.env, overrides: overrides as never });
  try {
    config = load();
  } catch (err) {
    process.stderr.write(`screamwatch daemon: ${(err as Error).message}\n`);
    return exitCodeFor(err);
  }
  return runDaemon(config, {
    handleSignals: true,
    ...(file !== undefined && { reloadConfig: load }),
    ...options,
    ...(drainTimeoutS !== undefined && { drainTimeoutS }),
  });
}
