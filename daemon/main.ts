// The daemon's process entry for systemd: `node --import tsx daemon/main.ts --config FILE`.
// Same flags as `screamwatch daemon`.
import { runDaemonCommand } from './cli.ts';

process.exitCode = await runDaemonCommand(process.argv.slice(2));
