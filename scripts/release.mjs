#!/usr/bin/env node
// `npm run release [-- --arch x64|arm64] [--native-modules DIR] [--out DIR]`
//
// Writes, into release/ (or --out):
//   screamwatch-daemon-<version>-linux-<arch>.tar.gz (+ .sha256)  what a sensor runs: the daemon
//       bundle (dist/daemon.mjs, every pure-JS dependency inside), the model, and node_modules
//       with only the packages the bundle loads at run time (daemon/package.json
//       "dependencies": better-sqlite3, sd-notify, node-record-lpcm16 and what they require),
//       their native modules built for <arch>. No twilio, mongodb, fastify, aedes, nodemailer,
//       esbuild: nothing of the cloud.
//   screamwatch-cloud-<version>.tar.gz (+ .sha256)  the built CLI and bridge (dist/cli.mjs,
//       dist/cloud.mjs), the sources the dashboard bundles for the browser at start, the model,
//       package.json + package-lock.json; install with `npm ci --omit=dev` on the server (it
//       builds better-sqlite3 there, so the tarball does not depend on the server's arch).
//
// Native modules: by default they are copied from this checkout's node_modules, which only
// works for this machine's arch (and Node ABI). For another arch, build them there first
// (scripts/native-modules.sh arm64 <node-version> DIR: an arm64 container on the controller)
// and pass --native-modules DIR/node_modules. Every .node file's ELF machine is checked
// against --arch, and the release records the Node ABI (process.versions.modules) it needs.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildAll, DAEMON_EXTERNAL } from './build.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

/** ELF e_machine of each supported arch (Node's process.arch names). */
const ELF_MACHINE = { x64: 62, arm64: 183, arm: 40 };
/** Run-time dependencies that are needed only to install (better-sqlite3 downloads a prebuilt binary with it). */
const INSTALL_ONLY = new Set(['prebuild-install']);
/** Never in a sensor release, whatever depends on what. */
export const CLOUD_ONLY_PACKAGES = ['twilio', 'mongodb', 'fastify', 'aedes', 'nodemailer', 'esbuild'];

export class ReleaseError extends Error {}

function sha256File(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** GNU tar, reproducible: sorted names, root-owned, fixed mtime (SOURCE_DATE_EPOCH or the last commit). */
function tarGz(parent, dirName, outFile) {
  let epoch = process.env.SOURCE_DATE_EPOCH;
  if (!epoch) {
    try {
      epoch = execFileSync('git', ['-C', root, 'log', '-1', '--format=%ct'], { encoding: 'utf8' }).trim();
    } catch {
      epoch = '0';
    }
  }
  execFileSync('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    `--mtime=@${epoch}`,
    '-czf',
    outFile,
    '-C',
    parent,
    dirName,
  ]);
  const sum = sha256File(outFile);
  // `sha256sum -c` format
  writeFileSync(`${outFile}.sha256`, `${sum}  ${basename(outFile)}\n`);
  return sum;
}

function elfMachine(file) {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(20);
    readSync(fd, b, 0, 20, 0);
    if (b.readUInt32BE(0) !== 0x7f454c46) return null;
    return b[5] === 2 ? b.readUInt16BE(18) : b.readUInt16LE(18);
  } finally {
    closeSync(fd);
  }
}

/** Files of an installed package a running process needs: no native sources, build leftovers, tests. */
function keepFile(rel, isNative) {
  const parts = rel.split('/');
  if (['test', 'tests', 'example', 'examples', 'docs', '.github', 'benchmark'].includes(parts[0]))
    return false;
  if (isNative) {
    if (parts[0] === 'deps' || parts[0] === 'src') return false;
    if (parts[0] === 'build') {
      return (
        parts.length === 3 &&
        parts[1] === 'Release' &&
        rel.endsWith('.node') &&
        !rel.includes('test_extension')
      );
    }
    if (/\.(cc|cpp|c|h|hpp|gyp|gypi)$/.test(rel)) return false;
  }
  return !/\.(ts|mts|cts|map)$/.test(rel);
}

function copyPackage(from, to) {
  const isNative = existsSync(join(from, 'binding.gyp'));
  const walk = (dir) => {
    for (const e of readdirSync(join(from, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(rel); // nested packages are copied as packages
      } else if (e.isFile() && keepFile(rel, isNative)) {
        mkdirSync(dirname(join(to, rel)), { recursive: true });
        copyFileSync(join(from, rel), join(to, rel));
        chmodSync(join(to, rel), statSync(join(from, rel)).mode & 0o755);
      }
    }
  };
  walk('');
}

/**
 * Copies `names` and everything they depend on at run time from `modules` (an installed
 * node_modules, hoisted or nested) into `dest`/node_modules, resolving as Node does: the
 * requiring package's own node_modules first, then upwards.
 */
export function copyRuntimeClosure(modules, names, optional, dest) {
  const copied = new Map(); // package dir (source) -> version
  const resolvePkg = (name, fromDir) => {
    for (let d = fromDir; d.startsWith(modules); d = dirname(dirname(d))) {
      const c = join(d, 'node_modules', name);
      if (existsSync(join(c, 'package.json'))) return c;
      if (d === modules) break;
    }
    const top = join(modules, name);
    return existsSync(join(top, 'package.json')) ? top : null;
  };
  const visit = (name, fromDir, isOptional) => {
    if (INSTALL_ONLY.has(name)) return;
    const dir = resolvePkg(name, fromDir);
    if (!dir) {
      if (isOptional) return;
      throw new ReleaseError(
        `${name} (needed by ${relative(modules, fromDir) || 'the daemon'}) is not installed in ${modules}`,
      );
    }
    if (copied.has(dir)) return;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    copied.set(dir, pkg.version);
    copyPackage(dir, join(dest, 'node_modules', relative(modules, dir)));
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir, false);
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, dir, true);
  };
  for (const n of names) visit(n, modules, false);
  for (const n of optional) visit(n, modules, true);
  return [...copied].map(([dir, version]) => ({ name: relative(modules, dir), version }));
}

function nativeFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.node')) out.push(p);
    }
  };
  walk(dir);
  return out;
}

function dirBytes(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += statSync(join(e.parentPath ?? e.path, e.name)).size;
  }
  return n;
}

export async function makeRelease({
  arch = process.arch,
  nativeModules,
  out = join(root, 'release'),
  build = true,
  cloud = true,
  log = (s) => process.stdout.write(`${s}\n`),
} = {}) {
  if (!(arch in ELF_MACHINE))
    throw new ReleaseError(`--arch ${arch}: one of ${Object.keys(ELF_MACHINE).join(', ')}`);
  const modules = nativeModules ?? join(root, 'node_modules');
  let abi = { node: process.version, modules: process.versions.modules };
  if (nativeModules) {
    const marker = join(nativeModules, '.screamwatch-native.json');
    if (!existsSync(marker)) {
      throw new ReleaseError(
        `${marker} missing: build the modules with scripts/native-modules.sh (it records the Node ABI)`,
      );
    }
    abi = JSON.parse(readFileSync(marker, 'utf8'));
    if (abi.arch !== arch) throw new ReleaseError(`${nativeModules} was built for ${abi.arch}, not ${arch}`);
  } else if (arch !== process.arch) {
    throw new ReleaseError(
      `--arch ${arch} on a ${process.arch} machine: build the native modules for ${arch} first ` +
        `(scripts/native-modules.sh ${arch} <node-version> DIR) and pass --native-modules DIR/node_modules`,
    );
  }
  if (build) await buildAll({ quiet: true });
  const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const daemonPkg = JSON.parse(readFileSync(join(root, 'daemon/package.json'), 'utf8'));
  const version = rootPkg.version;
  mkdirSync(out, { recursive: true });
  const stage = join(out, '.stage');
  rmSync(stage, { recursive: true, force: true });

  // ---- the sensor ----
  const dName = `screamwatch-daemon-${version}-linux-${arch}`;
  const d = join(stage, dName);
  mkdirSync(join(d, 'dist'), { recursive: true });
  mkdirSync(join(d, 'bin'), { recursive: true });
  mkdirSync(join(d, 'models'), { recursive: true });
  const runtimeDeps = Object.keys(daemonPkg.dependencies ?? {});
  const optionalDeps = Object.keys(daemonPkg.optionalDependencies ?? {});
  const externals = [...DAEMON_EXTERNAL].sort();
  if (JSON.stringify(externals) !== JSON.stringify([...runtimeDeps, ...optionalDeps].sort())) {
    throw new ReleaseError(
      `daemon/package.json dependencies (${[...runtimeDeps, ...optionalDeps]}) must be what the bundle leaves external (${externals})`,
    );
  }
  const closure = copyRuntimeClosure(modules, runtimeDeps, optionalDeps, d);
  const leaked = closure.filter((p) => CLOUD_ONLY_PACKAGES.includes(p.name.split('/node_modules/').pop()));
  if (leaked.length)
    throw new ReleaseError(`cloud packages in the daemon closure: ${leaked.map((p) => p.name)}`);
  for (const f of nativeFiles(join(d, 'node_modules'))) {
    const m = elfMachine(f);
    if (m !== ELF_MACHINE[arch]) {
      throw new ReleaseError(
        `${relative(d, f)} is built for ELF machine ${m}, not ${arch} (${ELF_MACHINE[arch]})`,
      );
    }
  }
  for (const f of ['daemon.mjs', 'daemon-check-config.mjs'])
    copyFileSync(join(root, 'dist', f), join(d, 'dist', f));
  // the unit travels with the code it runs (Ansible installs it from the release)
  mkdirSync(join(d, 'systemd'), { recursive: true });
  copyFileSync(
    join(root, 'deploy/systemd/screamwatch-daemon.service'),
    join(d, 'systemd/screamwatch-daemon.service'),
  );
  if (existsSync(join(root, 'dist/daemon.mjs.LEGAL.txt')))
    copyFileSync(join(root, 'dist/daemon.mjs.LEGAL.txt'), join(d, 'dist/daemon.mjs.LEGAL.txt'));
  copyFileSync(join(root, 'models/screamwatch-forest.json'), join(d, 'models/screamwatch-forest.json'));
  copyFileSync(join(root, 'models/MODEL_CARD.md'), join(d, 'models/MODEL_CARD.md'));
  copyFileSync(join(root, 'daemon/daemon.example.yaml'), join(d, 'daemon.example.yaml'));
  const bin = join(d, 'bin/screamwatch-daemon.mjs');
  writeFileSync(
    bin,
    "#!/usr/bin/env node\n// The sensor daemon (same flags as `screamwatch daemon`).\nimport '../dist/daemon.mjs';\n",
  );
  chmodSync(bin, 0o755);
  const { devDependencies: _bundled, ...manifest } = daemonPkg;
  writeFileSync(
    join(d, 'package.json'),
    `${JSON.stringify(
      {
        ...manifest,
        name: 'screamwatch-daemon',
        version,
        screamwatch: {
          release: 'daemon',
          arch,
          // native modules load only in a Node with this ABI (NODE_MODULE_VERSION)
          node: abi.node,
          nodeModuleVersion: abi.modules,
          bundled: Object.fromEntries(
            Object.keys(daemonPkg.devDependencies ?? {}).map((k) => [k, daemonPkg.devDependencies[k]]),
          ),
          modules: Object.fromEntries(closure.map((p) => [p.name, p.version])),
        },
      },
      null,
      2,
    )}\n`,
  );
  const daemonBytes = dirBytes(d);
  const daemonTar = join(out, `${dName}.tar.gz`);
  const daemonSum = tarGz(stage, dName, daemonTar);
  log(
    `${relative(process.cwd(), daemonTar)}  ${(statSync(daemonTar).size / 1e6).toFixed(1)} MB (${(daemonBytes / 1e6).toFixed(1)} MB unpacked)  sha256 ${daemonSum}`,
  );
  const result = {
    version,
    daemon: { file: daemonTar, sha256: daemonSum, unpackedBytes: daemonBytes, modules: closure, abi },
  };

  // ---- the cloud ----
  if (cloud) {
    const cName = `screamwatch-cloud-${version}`;
    const c = join(stage, cName);
    mkdirSync(join(c, 'dist'), { recursive: true });
    mkdirSync(join(c, 'bin'), { recursive: true });
    for (const f of ['cli.mjs', 'cloud.mjs', 'cloud-check-config.mjs'])
      copyFileSync(join(root, 'dist', f), join(c, 'dist', f));
    mkdirSync(join(c, 'systemd'), { recursive: true });
    copyFileSync(
      join(root, 'deploy/systemd/screamwatch-cloud.service'),
      join(c, 'systemd/screamwatch-cloud.service'),
    );
    // The dashboard bundles cloud/web/client/*.ts and the analysis worker with esbuild at
    // start, from their sources: they import the shared core, protocol and cloud modules.
    for (const dir of ['core', 'protocol', 'runtime', 'cloud', 'models'].filter((d) =>
      existsSync(join(root, d)),
    ))
      cpSync(join(root, dir), join(c, dir), { recursive: true });
    copyFileSync(join(root, 'cloud/config/cloud.example.yaml'), join(c, 'cloud.example.yaml'));
    copyFileSync(join(root, 'package-lock.json'), join(c, 'package-lock.json'));
    const cbin = join(c, 'bin/screamwatch.mjs');
    writeFileSync(
      cbin,
      "#!/usr/bin/env node\n// The `screamwatch` command, built (scripts/build.mjs).\nimport '../dist/cli.mjs';\n",
    );
    chmodSync(cbin, 0o755);
    // package.json as in the repository (npm ci checks it against the lockfile), with the
    // built entry as the command and no development scripts.
    writeFileSync(
      join(c, 'package.json'),
      `${JSON.stringify({ ...rootPkg, bin: { screamwatch: 'bin/screamwatch.mjs' }, scripts: { start: 'node dist/cloud.mjs' }, screamwatch: { release: 'cloud' } }, null, 2)}\n`,
    );
    const cloudTar = join(out, `${cName}.tar.gz`);
    const cloudSum = tarGz(stage, cName, cloudTar);
    log(
      `${relative(process.cwd(), cloudTar)}  ${(statSync(cloudTar).size / 1e6).toFixed(1)} MB  sha256 ${cloudSum}`,
    );
    result.cloud = { file: cloudTar, sha256: cloudSum };
  }
  rmSync(stage, { recursive: true, force: true });
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      arch: { type: 'string', default: process.arch },
      'native-modules': { type: 'string' },
      out: { type: 'string' },
      'no-cloud': { type: 'boolean', default: false },
    },
  });
  try {
    await makeRelease({
      arch: values.arch,
      nativeModules: values['native-modules'],
      out: values.out,
      cloud: !values['no-cloud'],
    });
  } catch (err) {
    if (!(err instanceof ReleaseError)) throw err;
    process.stderr.write(`release: ${err.message}\n`);
    process.exitCode = 1;
  }
}
