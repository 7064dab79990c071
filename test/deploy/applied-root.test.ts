// Checks what scripts/deploy-apply-test.sh left in its disposable target root after running
// site.yml for real. Skipped unless that script runs it (it sets SW_APPLIED_ROOT).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { access, chown, constants, lstat, mkdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../cloud/auth/passwords.ts';
import { loadCloudConfig } from '../../cloud/config/schema.ts';
import { loadDaemonConfig } from '../../daemon/config/load.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';

const run = promisify(execFile);
const root = process.env.SW_APPLIED_ROOT ?? '';
const password = process.env.SW_APPLIED_SENSOR_PASSWORD ?? '';
const adminPassword = process.env.SW_APPLIED_ADMIN_PASSWORD ?? '';
const version = process.env.SW_APPLIED_VERSION ?? '';
const cloudVersion = process.env.SW_APPLIED_CLOUD_VERSION ?? version;
const nodeVersion = process.env.SW_APPLIED_NODE_VERSION ?? '';
const repo = join(import.meta.dirname, '../..');
const at = (path: string) => join(root, path);

async function passwdEntry(file: string, name: string): Promise<string[]> {
  const line = (await readFile(at(file), 'utf8')).split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no ${name} in ${file} of ${root}`);
  return line.split(':');
}

describe.skipIf(!root)('deploy: the target root after a real apply of site.yml', () => {
  it('created the system user, in the audio group, without a login shell', async () => {
    const user = await passwdEntry('etc/passwd', 'screamwatch');
    expect(Number(user[2])).toBeLessThan(1000);
    expect(user[6]).toBe('/usr/sbin/nologin');
    const audio = await passwdEntry('etc/group', 'audio');
    expect(audio[3]!.split(',')).toContain('screamwatch');
  });

  it('installed the pinned Node.js from the copied tarball', async () => {
    expect(await readlink(at('opt/screamwatch/node/current'))).toBe(`v${nodeVersion}`);
    const { stdout } = await run('/usr/sbin/chroot', [
      root,
      '/opt/screamwatch/node/current/bin/node',
      '-p',
      'process.version',
    ]);
    expect(stdout.trim()).toBe(`v${nodeVersion}`);
  });

  it('unpacked the sensor release into releases/<version> and points current at it, root-owned, run-time packages only', async () => {
    expect(await readlink(at('opt/screamwatch/current'))).toBe(`/opt/screamwatch/releases/${version}`);
    const rel = at(`opt/screamwatch/releases/${version}`);
    const pkg = JSON.parse(await readFile(join(rel, 'package.json'), 'utf8')) as { version: string };
    expect(pkg.version).toBe(version);
    expect((await stat(join(rel, 'dist/daemon.mjs'))).uid).toBe(0);
    // Native modules came built in the tarball; sd-notify is what NotifyAccess=main relies on.
    await access(join(rel, 'node_modules/sd-notify/build/Release/notify.node'), constants.R_OK);
    await access(join(rel, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'));
    for (const p of ['vitest', 'tsx', 'esbuild', 'twilio', 'fastify', 'mongodb', 'aedes', 'nodemailer']) {
      await expect(access(join(rel, 'node_modules', p)), p).rejects.toThrow(/ENOENT/);
    }
    await access(at('usr/bin/arecord'), constants.X_OK);
  });

  it('unpacked the cloud release and installed its dependencies there', async () => {
    expect(await readlink(at('opt/screamwatch-cloud/current'))).toBe(
      `/opt/screamwatch-cloud/releases/${cloudVersion}`,
    );
    await access(
      at(
        `opt/screamwatch-cloud/releases/${cloudVersion}/node_modules/better-sqlite3/build/Release/better_sqlite3.node`,
      ),
    );
  });

  it('rendered daemon.yaml readable by the service group only, and the daemon loads it', async () => {
    const file = at('etc/screamwatch/daemon.yaml');
    const group = await passwdEntry('etc/group', 'screamwatch');
    const s = await stat(file);
    expect(s.mode & 0o777).toBe(0o640);
    expect(s.uid).toBe(0);
    expect(s.gid).toBe(Number(group[2]));
    const config = loadDaemonConfig({ file, env: {} });
    expect(config.sensorId).toBe('apply-1');
    expect(config.mqtt.password).toBe(password);
    expect(config.location.address).toBe('1 Example Street, Utrecht: the "bench"');
    expect((await stat(at('etc/screamwatch'))).mode & 0o777).toBe(0o750);
  });

  it('rendered cloud.yaml: the cloud loads it and the sensor password verifies against its hash', async () => {
    const file = at('etc/screamwatch/cloud.yaml');
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    const config = loadCloudConfig({ file, env: {} });
    const entry = config.mqtt.sensors.find((s) => s.sensorId === 'apply-1');
    expect(entry).toBeDefined();
    expect(await verifyPassword(password, entry!.passwordHash)).toBe(true);
    expect(config.dataDir).toBe('/var/lib/screamwatch-cloud');
  });

  it.each(['screamwatch-daemon.service', 'screamwatch-cloud.service'])(
    'installed and enabled %s from the release, and it verifies in the target root',
    async (unit) => {
      const installed = at(`etc/systemd/system/${unit}`);
      // the release's copy of the unit, which is the repository's
      expect(await readFile(installed, 'utf8')).toBe(
        await readFile(join(repo, 'deploy/systemd', unit), 'utf8'),
      );
      const link = at(`etc/systemd/system/multi-user.target.wants/${unit}`);
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      expect(await readlink(link)).toBe(`/etc/systemd/system/${unit}`);
      const { stdout, stderr } = await run('systemd-analyze', [
        'verify',
        `--root=${root}`,
        '--man=no',
        '--generators=no',
        installed,
      ]);
      expect(`${stdout}${stderr}`.trim()).toBe('');
    },
  );
});

/** The unit's [Service] command line and identity, to run it the way systemd would. */
async function serviceOf(unit: string): Promise<{ argv: string[]; cwd: string; user: string }> {
  const text = await readFile(at(`etc/systemd/system/${unit}`), 'utf8');
  const value = (key: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${key}=`));
    if (!line) throw new Error(`${unit} has no ${key}=`);
    return line.slice(key.length + 1);
  };
  return { argv: value('ExecStart').split(' '), cwd: value('WorkingDirectory'), user: value('User') };
}

const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
});

/** Runs a unit's ExecStart inside the target root as its User, with systemd's StateDirectory. */
async function startService(unit: string, stateDir: string, extraArgs: string[]): Promise<() => string> {
  const { argv, cwd, user } = await serviceOf(unit);
  const [, , uid, gid] = await passwdEntry('etc/passwd', user);
  await mkdir(at(`var/lib/${stateDir}`), { recursive: true, mode: 0o750 });
  await chown(at(`var/lib/${stateDir}`), Number(uid), Number(gid));
  const child = spawn(
    '/usr/sbin/chroot',
    [`--userspec=${user}:${user}`, root, '/usr/bin/env', '-C', cwd, ...argv, ...extraArgs],
    {
      // Only what systemd would set: nothing of this machine's SCREAMWATCH_* leaks in.
      env: {
        PATH: '/usr/local/bin:/usr/bin:/bin',
        HOME: `/var/lib/${stateDir}`,
        NODE_ENV: 'production',
        STATE_DIRECTORY: `/var/lib/${stateDir}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  child.on('error', (err) => (output += `spawn failed: ${err.message}\n`));
  return () => output;
}

describe.skipIf(!root || !adminPassword)(
  'deploy: the deployed sensor reports online on the deployed cloud',
  () => {
    it('the daemon, run from its unit with the rendered config, shows as online on the dashboard', async () => {
      // Both the dashboard and the daemon need the shipped model; say so rather than time out.
      await access(at(`opt/screamwatch/releases/${version}/models/screamwatch-forest.json`)).catch(() => {
        throw new Error(
          `the release ${version} has no models/screamwatch-forest.json: neither side can start`,
        );
      });
      const mqttPort = await freePort();
      const httpPort = await freePort();
      const cloudLog = await startService('screamwatch-cloud.service', 'screamwatch-cloud', [
        '--mqtt-port',
        String(mqttPort),
        '--http-port',
        String(httpPort),
      ]);
      const base = `http://127.0.0.1:${httpPort}`;
      const cookie = await eventually(
        async () => {
          const res = await fetch(`${base}/api/login`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ username: 'admin', password: adminPassword }),
          });
          if (res.status !== 200) throw new Error(`login: HTTP ${res.status}: ${await res.text()}`);
          return res.headers.get('set-cookie')?.split(';')[0];
        },
        60_000,
        'the dashboard login',
        250,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\ncloud output:\n${cloudLog()}`);
      });

      // No microphone here: the sensor listens to a generated file instead of ALSA, and reaches
      // the cloud's plain listener on loopback; everything else (sensor id, MQTT username and
      // password, topic root) comes from the daemon.yaml the playbook rendered.
      await run('sox', [
        '-n',
        '-r',
        '16000',
        '-c',
        '1',
        '-b',
        '16',
        at('tmp/room.wav'),
        'synth',
        '60',
        'pinknoise',
        'vol',
        '0.02',
      ]);
      const daemonLog = await startService('screamwatch-daemon.service', 'screamwatch', [
        '--source',
        'file:/tmp/room.wav',
        '--broker',
        `mqtt://127.0.0.1:${mqttPort}`,
      ]);
      const sensor = await eventually(
        async () => {
          const res = await fetch(`${base}/api/sensors`, { headers: { cookie } });
          const body = (await res.json()) as {
            sensors: { id: string; status: string; room?: string | null }[];
          };
          return body.sensors.find((s) => s.id === 'apply-1' && s.status === 'online');
        },
        45_000,
        'apply-1 online on /api/sensors',
        250,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\ndaemon output:\n${daemonLog()}\ncloud output:\n${cloudLog()}`);
      });
      expect(sensor.room).toBe('Test bench');
      const daemonConfig = loadDaemonConfig({ file: at('etc/screamwatch/daemon.yaml'), env: {} });
      expect(daemonConfig.mqtt.url).toMatch(/^mqtts:\/\/localhost:\d+$/);
      expect(daemonConfig.mqtt.caFile).toBe('/etc/screamwatch/ca.pem');
    }, 150_000);
  },
);
