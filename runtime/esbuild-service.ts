import { fileURLToPath } from 'node:url';
import { type BuildOptions, type BuildResult, build, stop } from 'esbuild';

/** esbuild's own parameter type (not exported): T, with no key BuildOptions does not know. */
type SameShape<Out, In extends Out> = In & { [Key in Exclude<keyof In, keyof Out>]: never };

let building = 0;

/**
 * esbuild's `build()`, and then its service child process (`esbuild --service`, which esbuild
 * keeps for later builds) stopped once no build of this process is running. The dashboard bundles
 * only at start; without this an idle esbuild process stayed beside the bridge for its lifetime,
 * and after `CloudApp.stop()` (the leaked-resource check, test/support/leak-check.ts).
 * The count matters: the client bundle and the analysis worker build at the same time, and
 * stop() fails any build still running. A later build starts a new service.
 */
export async function buildThenStopService<T extends BuildOptions>(
  options: SameShape<BuildOptions, T>,
): Promise<BuildResult<T>> {
  building += 1;
  try {
    return await build<T>(options);
  } finally {
    building -= 1;
    if (building === 0) await stop();
  }
}

/**
 * A worker thread's script: `entry` (a .ts file) and everything it imports bundled into one
 * CommonJS script for `new Worker(code, { eval: true })`. No build step, and it runs the same
 * under tsx and vitest. CommonJS: an `eval` worker runs a script, and bundled dependencies
 * use require().
 */
export async function bundleWorkerScript(entry: URL): Promise<string> {
  const out = await buildThenStopService({
    entryPoints: [fileURLToPath(entry)],
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'silent',
  });
  return out.outputFiles[0]!.text;
}
