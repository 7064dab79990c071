import { ScreamwatchError } from '../protocol/errors.ts';

const HELP = `screamwatch: on-device scream detection and alerting

usage: screamwatch <command> [options]      (screamwatch <command> --help for its options)

  demo                     a complete installation on this machine (cloud + dashboard + one sensor)
  analyze <file|dir>...    score WAV/MP3 files (--json: one JSON object per file per line)
  train --data DIR         train the forest (validated leave-one-family-out) and write the model
  eval --data DIR          score a model on a labelled folder (or --cross-validate the recipe)
  model-card               rewrite the model card's tables from the model file (--check: verify)
  daemon                   the sensor service (capture, detect, outbox, MQTT)
  cloud                    the bridge (broker, ingest, alerts, store, dashboard)
`;

type Command = (argv: string[]) => Promise<number>;

// Each command loads its own modules: `analyze` should not pay for the MQTT broker.
const COMMANDS: Record<string, () => Promise<Command>> = {
  analyze: async () => (await import('./analyze.ts')).runAnalyze,
  train: async () => (await import('./train.ts')).runTrain,
  eval: async () => (await import('./eval.ts')).runEval,
  'model-card': async () => (await import('./model-card.ts')).runModelCard,
  daemon: async () => (await import('../daemon/cli.ts')).runDaemonCommand,
  cloud: async () => (await import('../cloud/cli.ts')).runCloudCommand,
  demo: async () => (await import('./demo.ts')).runDemo,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return name ? 0 : 2;
  }
  if (name === '--version') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`screamwatch: unknown command ${JSON.stringify(name)}\n\n${HELP}`);
    return 2;
  }
  try {
    return await (await load())(rest);
  } catch (err) {
    const e = err as Error & { code?: string };
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown or malformed flags
    if (e.code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`screamwatch ${name}: ${e.message}\n`);
      return 2;
    }
    const code = err instanceof ScreamwatchError ? `[${err.code}] ` : '';
    process.stderr.write(`screamwatch ${name}: ${code}${e.message}\n`);
    return 1;
  }
}
