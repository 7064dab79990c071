// The cloud bridge's process entry for systemd: `node --import tsx cloud/main.ts --config FILE`.
// Same flags as `screamwatch cloud`.
import { runCloudCommand } from './cli.ts';

const code = await runCloudCommand(process.argv.slice(2));
// Exit at once once shutdown is complete (as daemon/main.ts does): a natural exit first tears
// down handles and tsx's loader thread, a window in which a second SIGTERM killed the process.
process.exit(code);
