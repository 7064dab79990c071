// `npm run bench`: every benchmark in turn, figures printed as tables. BENCH_ONLY=core,cloud,daemon
// picks some; BENCH_DAEMON_MINUTES shortens the daemon's real-speed replay (default 10 minutes).
import { runCloudBench } from './cloud.ts';
import { runCoreBench } from './core.ts';
import { runDaemonBench } from './daemon.ts';

const all: Record<string, () => Promise<Record<string, number | string>>> = {
  core: runCoreBench,
  cloud: runCloudBench,
  daemon: runDaemonBench,
};
const only = (process.env.BENCH_ONLY ?? 'core,cloud,daemon').split(',').filter(Boolean);
for (const name of only) {
  const bench = all[name];
  if (!bench) throw new Error(`unknown benchmark ${name}; known: ${Object.keys(all).join(', ')}`);
  console.log(`\n== ${name} ==`);
  console.table(await bench());
}
