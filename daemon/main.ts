// The daemon's process entry for systemd: `node --import tsx daemon/main.ts --config FILE`.
// Same flags as `screamwatch daemon`.
import { runDaemonCommand } from './cli.ts';

const code = await runDaemonCommand(process.argv.slice(2));
// Exit at once rather than letting the event loop drain: shutdown is complete here, and a
// natural exit first tears down handles (our SIGTERM handler among them) and tsx's loader
// thread, a window in which a second SIGTERM killed the finished process by signal.
process.exit(code);
