// The cloud bridge's process entry for systemd: `node --import tsx cloud/main.ts --config FILE`.
// Same flags as `screamwatch cloud`.
import { runCloudCommand } from './cli.ts';

process.exitCode = await runCloudCommand(process.argv.slice(2));
