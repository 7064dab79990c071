#!/usr/bin/env node
// `npm run build`: plain JavaScript for the units and the release tarballs, so nothing runs
// TypeScript (tsx) at run time.
//
//   dist/daemon-check-config.mjs, dist/cloud-check-config.mjs  validate a config file with the
//                            release's own schema (Ansible's `validate:` step), exit 78 if bad.
//   dist/daemon.mjs          the sensor daemon (daemon/main.ts), ONE file with every pure-JS
//                            dependency bundled in; only native modules and the two packages the
//                            sources load with createRequire() stay outside (DAEMON_EXTERNAL).
//   dist/cli.mjs, cloud.mjs  the `screamwatch` CLI and the cloud bridge entry (cloud/main.ts);
//                            npm packages stay external (node_modules of the install).
//   dist/*.meta.json         esbuild's metafiles: which sources and packages went into what
//                            (test/release checks that no cloud package is in the daemon).
//
// Files the sources find relative to themselves (`new URL('../../models/…', import.meta.url)`,
// `../package.json`, createRequire) keep working: each source's `import.meta.url` becomes the URL
// the source file WOULD have beside dist/ (dist/../core/model/load.ts), so a bundle in
// <root>/dist finds <root>/models, <root>/package.json and <root>/node_modules, in this checkout
// and in an unpacked release alike.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, stop } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = join(root, 'dist');

/** Packages the daemon loads at run time from node_modules (the release ships exactly these). */
export const DAEMON_EXTERNAL = [
  'better-sqlite3', // native
  'sd-notify', // native, optional, loaded with createRequire
  'node-record-lpcm16', // loaded with createRequire (spawns arecord)
];

const sourceUrlBesideDist = {
  name: 'source-url-beside-dist',
  setup(b) {
    b.onLoad({ filter: /\.(ts|mts)$/ }, (args) => {
      let rel = relative(outdir, args.path).split(sep).join('/');
      if (!rel.startsWith('.')) rel = `./${rel}`;
      return {
        contents: readFileSync(args.path, 'utf8').replaceAll(
          'import.meta.url',
          `new URL(${JSON.stringify(rel)}, import.meta.url).href`,
        ),
        loader: 'ts',
      };
    });
  },
};

// Bundled CommonJS packages call require('fs') etc.; an ES module has no `require` of its own.
const banner = {
  js: "import { createRequire as __swCreateRequire } from 'node:module'; const require = __swCreateRequire(import.meta.url);",
};

/** Tests build while other tests run the built files: a reader never sees half a file. */
function writeAtomically(path, contents) {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, path);
}

const common = {
  bundle: true,
  write: false,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  logLevel: 'warning',
  metafile: true,
  legalComments: 'linked',
  banner,
  plugins: [sourceUrlBesideDist],
};

export async function buildAll({ quiet = false } = {}) {
  try {
    return await buildBoth(quiet);
  } finally {
    // esbuild keeps its service child process (`esbuild --service`) for later builds; this is
    // the whole build, so stop it rather than leave it idle beside whoever called us (release.mjs
    // packing, a test: the leaked-resource check). Nothing else in these processes builds at
    // the same time, which stop() would fail.
    await stop();
  }
}

async function buildBoth(quiet) {
  mkdirSync(outdir, { recursive: true });
  const daemon = await build({
    ...common,
    entryPoints: {
      daemon: join(root, 'daemon/main.ts'),
      'daemon-check-config': join(root, 'daemon/check-config.ts'),
    },
    outdir,
    external: DAEMON_EXTERNAL,
    // V8 keeps every script's source text in memory: no comments or indentation on a 512 MB Pi.
    // Identifiers stay, so stack traces in the journal still name our functions.
    minifyWhitespace: true,
    minifySyntax: true,
    // meyda's package.json "module" entry is a browser build that assigns to a global
    mainFields: ['main', 'module'],
  });
  // No code splitting: a command's modules are still initialised only when it runs (esbuild
  // keeps dynamic imports lazy), and two self-contained files are simpler to ship.
  const rest = await build({
    ...common,
    entryPoints: {
      cli: join(root, 'cli/run.ts'),
      cloud: join(root, 'cloud/main.ts'),
      'cloud-check-config': join(root, 'cloud/check-config.ts'),
    },
    outdir,
    packages: 'external',
  });
  for (const f of [...daemon.outputFiles, ...rest.outputFiles]) writeAtomically(f.path, f.contents);
  writeAtomically(join(outdir, 'daemon.meta.json'), JSON.stringify(daemon.metafile));
  writeAtomically(join(outdir, 'cli.meta.json'), JSON.stringify(rest.metafile));
  if (!quiet) {
    for (const [file, out] of Object.entries({ ...daemon.metafile.outputs, ...rest.metafile.outputs })) {
      if (file.endsWith('.mjs'))
        process.stdout.write(`${relative(root, file).padEnd(28)} ${(out.bytes / 1024).toFixed(0)} kB\n`);
    }
  }
  return { daemon: daemon.metafile, cli: rest.metafile };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildAll();
}
