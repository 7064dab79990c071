import { execFile } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const unitsDir = join(import.meta.dirname, '../../deploy/systemd');
const UNITS = ['screamwatch-daemon.service', 'screamwatch-cloud.service'] as const;

interface AnalyzeResult {
  code: number;
  output: string;
}

/**
 * A throwaway root with the host's stock units (so `After=network-online.target` resolves)
 * and an executable stub at the pinned Node.js path the units run (/opt/screamwatch/node/current).
 * `--root` keeps the check independent of whatever is installed in the host's /etc.
 */
async function makeRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'sw-units-'));
  await mkdir(join(root, 'opt/screamwatch/node/current/bin'), { recursive: true });
  await mkdir(join(root, 'etc/systemd/system'), { recursive: true });
  await cp('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true });
  await writeFile(join(root, 'opt/screamwatch/node/current/bin/node'), '#!/bin/sh\nexit 0\n');
  await chmod(join(root, 'opt/screamwatch/node/current/bin/node'), 0o755);
  // ExecReload=/bin/kill -HUP $MAINPID (the cloud bridge reloads its sensors on SIGHUP).
  await mkdir(join(root, 'bin'), { recursive: true });
  await writeFile(join(root, 'bin/kill'), '#!/bin/sh\nexit 0\n');
  await chmod(join(root, 'bin/kill'), 0o755);
  return root;
}

async function analyze(args: string[]): Promise<AnalyzeResult> {
  try {
    const { stdout, stderr } = await run('systemd-analyze', args, { timeout: 20_000 });
    return { code: 0, output: `${stdout}${stderr}`.trim() };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      output: `${e.stdout ?? ''}${e.stderr ?? ''}`.trim(),
    };
  }
}

/** `systemd-analyze verify` exits 0 on unknown keys and unparsable values: any output is a failure. */
async function verify(root: string, name: string, text: string): Promise<AnalyzeResult> {
  const path = join(root, 'etc/systemd/system', name);
  await writeFile(path, text);
  return analyze(['verify', `--root=${root}`, '--man=no', '--generators=no', path]);
}

/** The [Service]/[Unit]/[Install] assignments, last one wins except for lists we join. */
function directives(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    map.set(key, [...(map.get(key) ?? []), line.slice(eq + 1)]);
  }
  return map;
}

let root = '';
const texts = new Map<string, string>();
beforeAll(async () => {
  root = await makeRoot();
  for (const name of UNITS) texts.set(name, await readFile(join(unitsDir, name), 'utf8'));
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('systemd units: systemd-analyze verify', () => {
  it.each(UNITS)('%s verifies without a single warning', async (name) => {
    const result = await verify(root, name, texts.get(name)!);
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });

  // The check above is only worth something if warnings reach us: prove it with broken copies.
  it('catches a misspelled directive and an unparsable value (exit code 0, warning output)', async () => {
    const broken = texts
      .get('screamwatch-daemon.service')!
      .replace('ProtectHome=yes', 'ProtectHomes=yes')
      .replace(/^WatchdogSec=.*$/m, 'WatchdogSec=thirty');
    const result = await verify(root, 'screamwatch-daemon.service', broken);
    expect(result.code).toBe(0);
    expect(result.output).toMatch(/Unknown key 'ProtectHomes'/);
    expect(result.output).toMatch(/Failed to parse sec value.*thirty/);
  });

  it('catches an ExecStart binary that does not exist in the target root', async () => {
    const broken = texts
      .get('screamwatch-daemon.service')!
      .replace('/opt/screamwatch/node/current/bin/node ', '/opt/screamwatch/node/v0/bin/node ');
    const result = await verify(root, 'screamwatch-daemon.service', broken);
    expect(result.output).toMatch(/\/opt\/screamwatch\/node\/v0\/bin\/node is not executable/);
  });
});

describe('systemd units: the contract with the daemon, the cloud and Ansible', () => {
  it.each(UNITS)('%s is supervised: notify + watchdog + bounded restarts, as a dedicated user', (name) => {
    const d = directives(texts.get(name)!);
    expect(d.get('Type')).toEqual(['notify']);
    // The node process notifies itself (sd-notify native module), see the unit's comment.
    expect(d.get('NotifyAccess')).toEqual(['main']);
    expect(Number.parseInt(d.get('WatchdogSec')![0]!, 10)).toBeGreaterThan(0);
    expect(d.get('Restart')).toEqual(['on-failure']);
    expect(Number.parseInt(d.get('StartLimitBurst')![0]!, 10)).toBeGreaterThan(0);
    expect(Number.parseInt(d.get('StartLimitIntervalSec')![0]!, 10)).toBeGreaterThan(0);
    expect(d.get('User')).toEqual(['screamwatch']);
    expect(d.get('WantedBy')).toEqual(['multi-user.target']);
    for (const key of ['NoNewPrivileges', 'ProtectHome', 'PrivateTmp', 'ProtectKernelTunables']) {
      expect(d.get(key), key).toEqual(['yes']);
    }
    expect(d.get('ProtectSystem')).toEqual(['strict']);
    expect(d.get('RestrictAddressFamilies')).toEqual(['AF_UNIX AF_INET AF_INET6']);
    // V8 JIT: MemoryDenyWriteExecute=yes would crash node at start.
    expect(d.has('MemoryDenyWriteExecute')).toBe(false);
  });

  it('the daemon runs its process entry with the config Ansible renders, may use ALSA and writes only its state dir', () => {
    const d = directives(texts.get('screamwatch-daemon.service')!);
    expect(d.get('ExecStart')).toEqual([
      '/opt/screamwatch/node/current/bin/node --single-threaded --optimize-for-size /opt/screamwatch/current/dist/daemon.mjs --config /etc/screamwatch/daemon.yaml',
    ]);
    // the built release `current` points at: plain JavaScript, no TypeScript loader
    expect(d.get('ExecStart')![0]).not.toMatch(/tsx|\.ts\b/);
    expect(d.get('WorkingDirectory')).toEqual(['/opt/screamwatch/current']);
    expect(d.get('RestartPreventExitStatus')).toEqual(['78']);
    expect(d.get('SupplementaryGroups')).toEqual(['audio']);
    expect(d.get('StateDirectory')).toEqual(['screamwatch']);
    // PrivateDevices=yes would hide /dev/snd; the device cgroup must let ALSA through.
    expect(d.get('PrivateDevices')).toEqual(['no']);
    expect(d.get('DevicePolicy')).toEqual(['closed']);
    expect(d.get('DeviceAllow')).toEqual(['char-alsa rw']);
    expect(d.has('ReadWritePaths')).toBe(false);
  });

  it('the cloud runs its process entry with its config and keeps its data in its own state dir', () => {
    const d = directives(texts.get('screamwatch-cloud.service')!);
    expect(d.get('RestartPreventExitStatus')).toEqual(['78']);
    expect(d.get('ExecStart')).toEqual([
      '/opt/screamwatch/node/current/bin/node /opt/screamwatch-cloud/current/dist/cloud.mjs --config /etc/screamwatch/cloud.yaml',
    ]);
    expect(d.get('WorkingDirectory')).toEqual(['/opt/screamwatch-cloud/current']);
    expect(d.get('StateDirectory')).toEqual(['screamwatch-cloud']);
    expect(d.get('PrivateDevices')).toEqual(['yes']);
  });

  // systemd's own exposure score (0 = locked down, 10 = unprotected); --threshold is in tenths.
  it.each(UNITS)('%s scores an exposure of at most 2.5 in systemd-analyze security', async (name) => {
    const path = join(root, 'etc/systemd/system', name);
    await writeFile(path, texts.get(name)!);
    const result = await analyze(['security', '--offline=yes', `--root=${root}`, '--threshold=25', path]);
    expect(result.output).toMatch(/Overall exposure level/);
    expect(result.code, result.output.split('\n').slice(-1)[0]).toBe(0);
  });
});
