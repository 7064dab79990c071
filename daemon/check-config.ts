// `node dist/daemon-check-config.mjs FILE`: validates a daemon config file with this release's
// own schema and exits 0, or prints the problem and exits 78 (EX_CONFIG). Ansible renders
// /etc/screamwatch/daemon.yaml through it before the file replaces the live one.
import { loadDaemonConfig } from './config/load.ts';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: daemon-check-config FILE\n');
  process.exit(2);
}
try {
  loadDaemonConfig({ file, env: {} });
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(78);
}
