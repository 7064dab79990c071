import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWav16 } from '../../core/audio/wav.ts';
import { DEMO_SAMPLE_RATE, synthesizeDemoRecording } from '../../demo/scream-recording.ts';
import { makeRelease, ReleaseError } from '../../scripts/release.mjs';
import { type AedesHarness, startAedes } from '../support/aedes.ts';

const repo = new URL('../..', import.meta.url).pathname;
const CLOUD_ONLY = [
  'twilio',
  'mongodb',
  'fastify',
  'aedes',
  'nodemailer',
  'esbuild',
  'tsx',
  'vitest',
  'typescript',
];
const rootPkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
const daemonPkg = JSON.parse(readFileSync(join(repo, 'daemon/package.json'), 'utf8'));

/** Every package directory under a node_modules tree (scoped and nested included). */
function installedPackages(modules: string): string[] {
  const out: string[] = [];
  if (!existsSync(modules)) return out;
  for (const name of readdirSync(modules)) {
    if (name.startsWith('.')) continue;
    const dirs = name.startsWith('@') ? readdirSync(join(modules, name)).map((n) => `${name}/${n}`) : [name];
    for (const d of dirs) {
      out.push(d);
      out.push(...installedPackages(join(modules, d, 'node_modules')));
    }
  }
  return out;
}

function diskBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  }
  return n;
}

describe('the daemon package', () => {
  it('pins the same versions as the root package, and lists every bundled package', () => {
    const all = { ...rootPkg.dependencies, ...rootPkg.optionalDependencies };
    for (const section of ['dependencies', 'optionalDependencies', 'devDependencies']) {
      for (const [name, version] of Object.entries(daemonPkg[section] ?? {})) {
        expect(`${name}@${version}`).toBe(`${name}@${all[name]}`);
      }
    }
    expect(daemonPkg.version).toBe(rootPkg.version);
    expect(daemonPkg.engines).toEqual(rootPkg.engines);
  });
});

describe('npm run release: the daemon tarball installs into an empty directory and runs with plain node', () => {
  const work = mkdtempSync(join(tmpdir(), 'sw-release-'));
  const out = join(work, 'out');
  const install = join(work, 'empty');
  let broker: AedesHarness;
  let tarball: string;

  beforeAll(async () => {
    // The release script as a user runs it (it builds first); plain node, no tsx.
    execFileSync(process.execPath, [join(repo, 'scripts/release.mjs'), '--out', out], {
      cwd: repo,
      stdio: 'pipe',
    });
    broker = await startAedes();
  }, 120_000);
  afterAll(async () => {
    await broker?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('writes both tarballs, each with a sha256 beside it', () => {
    const files = readdirSync(out).sort();
    const v = rootPkg.version;
    expect(files).toEqual(
      [
        `screamwatch-cloud-${v}.tar.gz`,
        `screamwatch-cloud-${v}.tar.gz.sha256`,
        `screamwatch-daemon-${v}-linux-${process.arch}.tar.gz`,
        `screamwatch-daemon-${v}-linux-${process.arch}.tar.gz.sha256`,
      ].sort(),
    );
    for (const f of files.filter((x) => x.endsWith('.tar.gz'))) {
      const sum = createHash('sha256')
        .update(readFileSync(join(out, f)))
        .digest('hex');
      expect(readFileSync(join(out, `${f}.sha256`), 'utf8')).toBe(`${sum}  ${f}\n`);
    }
    tarball = join(out, `screamwatch-daemon-${v}-linux-${process.arch}.tar.gz`);
  });

  it('holds the bundle, the model and only the run-time packages; nothing of the cloud', () => {
    mkdirSync(install);
    execFileSync('tar', ['-xzf', tarball, '-C', install, '--strip-components=1']);
    expect(existsSync(join(install, 'dist/daemon.mjs'))).toBe(true);
    expect(existsSync(join(install, 'models/screamwatch-forest.json'))).toBe(true);
    const pkgs = installedPackages(join(install, 'node_modules'));
    expect(pkgs).toContain('better-sqlite3');
    for (const p of pkgs) expect(CLOUD_ONLY).not.toContain(p.split('/node_modules/').pop());
    expect(pkgs.length).toBeLessThan(12);
    const manifest = JSON.parse(readFileSync(join(install, 'package.json'), 'utf8'));
    expect(manifest.screamwatch).toMatchObject({
      arch: process.arch,
      nodeModuleVersion: process.versions.modules,
    });
    // The bundle itself: esbuild's list of what went in names no cloud package.
    const meta = JSON.parse(readFileSync(join(repo, 'dist/daemon.meta.json'), 'utf8'));
    const bundled = new Set(
      Object.keys(meta.inputs)
        .filter((f) => f.includes('node_modules/'))
        .map((f) => {
          const rest = f.slice(f.lastIndexOf('node_modules/') + 13).split('/');
          return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
        }),
    );
    expect(bundled).toContain('mqtt');
    // every direct dependency the bundle contains is declared in daemon/package.json
    const rootDirect = { ...rootPkg.dependencies, ...rootPkg.optionalDependencies };
    const declared = {
      ...daemonPkg.dependencies,
      ...daemonPkg.optionalDependencies,
      ...daemonPkg.devDependencies,
    };
    for (const p of bundled) if (rootDirect[p]) expect(declared, `${p} is bundled`).toHaveProperty([p]);
    for (const p of CLOUD_ONLY) expect(bundled).not.toContain(p);
    expect(Object.keys(meta.inputs).some((f) => f.startsWith('cloud/'))).toBe(false);
    expect(diskBytes(install)).toBeLessThan(40e6);
  });

  it('`screamwatch-daemon --source file:… --fast` detects the scream and publishes it to a local broker', async () => {
    const wav = join(work, 'scream.wav');
    writeFileSync(wav, encodeWav16(synthesizeDemoRecording().samples, DEMO_SAMPLE_RATE));
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, LANG: 'C' };
    const child = spawn(
      process.execPath,
      [
        join(install, 'bin/screamwatch-daemon.mjs'),
        '--sensor-id',
        'release-1',
        '--broker',
        broker.url,
        '--source',
        `file:${wav}`,
        '--fast',
        '--state-dir',
        join(work, 'state'),
      ],
      // an empty working directory outside the repository: nothing but the release to resolve from
      { cwd: install, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (b) => (output += b));
    child.stderr.on('data', (b) => (output += b));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(output).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
    expect(code, output).toBe(0);
    const events = broker.messages.filter((m) => m.topic === 'screamwatch/sensors/release-1/events');
    expect(events.length, output).toBeGreaterThanOrEqual(1);
    const event = JSON.parse(events[0]!.payload.toString());
    expect(event).toMatchObject({ sensorId: 'release-1', isScream: true, audioSource: `file:${wav}` });
    // the version comes from the release's package.json, found beside the bundle
    expect(event.deviceInfo.daemonVersion).toBe(rootPkg.version);
  }, 60_000);
});

describe('npm run release for another arch (arm64): the native modules must be built for it', () => {
  const work = mkdtempSync(join(tmpdir(), 'sw-release-arch-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const other = process.arch === 'arm64' ? 'x64' : 'arm64';

  it("refuses to pack this machine's native modules as another arch", async () => {
    await expect(
      makeRelease({ arch: other, out: work, build: false, cloud: false, log: () => {} }),
    ).rejects.toThrow(
      new RegExp(`--arch ${other} on a ${process.arch} machine: build the native modules for ${other} first`),
    );
  });

  it('checks every .node file of --native-modules against the arch (ELF machine), and wants the ABI record', async () => {
    // A node_modules that claims to be arm64 but holds this machine's binaries.
    const fake = join(work, 'node_modules');
    mkdirSync(fake);
    for (const p of [
      'better-sqlite3',
      'bindings',
      'file-uri-to-path',
      'node-record-lpcm16',
      'debug',
      'ms',
      'sd-notify',
    ]) {
      if (existsSync(join(repo, 'node_modules', p)))
        execFileSync('cp', ['-a', join(repo, 'node_modules', p), fake]);
    }
    await expect(
      makeRelease({ arch: other, nativeModules: fake, out: work, build: false, cloud: false, log: () => {} }),
    ).rejects.toThrow(/\.screamwatch-native\.json missing/);
    writeFileSync(
      join(fake, '.screamwatch-native.json'),
      JSON.stringify({ arch: other, node: 'v22.0.0', modules: '127' }),
    );
    const err = await makeRelease({
      arch: other,
      nativeModules: fake,
      out: work,
      build: false,
      cloud: false,
      log: () => {},
    }).catch((e) => e);
    expect(err).toBeInstanceOf(ReleaseError);
    expect(err.message).toMatch(
      new RegExp(
        `better_sqlite3\\.node is built for ELF machine ${process.arch === 'x64' ? 62 : 183}, not ${other}`,
      ),
    );
  }, 60_000);
});
