// `node dist/cloud-check-config.mjs FILE`: validates a cloud config file with this release's own
// schema and exits 0, or prints the problem and exits 78 (EX_CONFIG). Ansible renders
// /etc/screamwatch/cloud.yaml through it before the file replaces the live one.
import { loadCloudConfig } from './config/schema.ts';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: cloud-check-config FILE\n');
  process.exit(2);
}
try {
  loadCloudConfig({ file, env: {} });
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(78);
}
