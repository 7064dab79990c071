#!/usr/bin/env node
// Low-memory entry for the sensor daemon, for small boards:
//   node --max-semi-space-size=1 /opt/screamwatch/daemon/launch.mjs --config /etc/screamwatch/daemon.yaml
// Same flags as `screamwatch daemon`. Running TypeScript through tsx costs a loader thread
// (a second V8 isolate, ~30 MB RSS on Node 20). This entry instead bundles daemon/main.ts
// with esbuild (already a dependency) into one ES module in the temp dir at every start
// (tens of milliseconds, nothing to build or keep in sync by hand) and imports it with
// plain Node. Packages stay external, resolved from this checkout; `import.meta.url` keeps
// each source file's own URL, so files found relative to the sources (the shipped model,
// package.json) are found as with tsx.
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, stop } from 'esbuild';

const entry = fileURLToPath(new URL('./main.ts', import.meta.url));

const keepImportMetaUrl = {
  name: 'keep-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replaceAll(
        'import.meta.url',
        JSON.stringify(pathToFileURL(args.path).href),
      ),
      loader: 'ts',
    }));
  },
};

const resolvePackagesHere = {
  name: 'resolve-packages-here',
  setup(build) {
    // bare specifiers (not relative, not absolute, not node: builtins) → this checkout's node_modules
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { path: args.path, external: true };
      return { path: import.meta.resolve(args.path), external: true };
    });
  },
};

const result = await build({
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  write: false,
  logLevel: 'warning',
  plugins: [keepImportMetaUrl, resolvePackagesHere],
});
// esbuild's service process is not needed any more; do not leave it running for months
await stop();
const code = result.outputFiles[0].contents;
const out = join(
  tmpdir(),
  `screamwatch-daemon-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`,
);
const tmp = `${out}.${process.pid}`;
writeFileSync(tmp, code);
renameSync(tmp, out);
await import(pathToFileURL(out).href);
