import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../cloud/auth/passwords.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';
import { connectSensor, newEvent, publishEvent, tempDir } from './bridge-harness.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Proc {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: () => string;
  exit: Promise<number | null>;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}, stdin?: string): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cloud/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    const parts = out.split('\n');
    out = parts.pop() ?? '';
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as Record<string, unknown>);
      } catch {
        lines.push({ raw: p });
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  if (stdin !== undefined) child.stdin!.end(stdin);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, lines, stderr: () => err, exit };
}

describe('screamwatch cloud (process)', () => {
  const procs: Proc[] = [];
  const dirs: { remove(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      if (p.child.exitCode === null) {
        p.child.kill('SIGKILL');
        await p.exit;
      }
    }
    for (const d of dirs.splice(0)) await d.remove();
  });

  it('runs the embedded broker on --mqtt-port, stores into SQLite under --data-dir, logs JSON lines, stops on SIGTERM', async () => {
    const dir = await tempDir('sw-cli-');
    dirs.push(dir);
    const port = await freePort();
    const p = run(['--mqtt-port', String(port), '--http-port', '0', '--data-dir', dir.path], {
      SCREAMWATCH_MQTT_ALLOW_ANONYMOUS: 'true',
      SCREAMWATCH_MQTT_HOST: '127.0.0.1',
      SCREAMWATCH_WEB_HOST: '127.0.0.1',
    });
    procs.push(p);
    await eventually(
      () => p.lines.some((l) => l.msg === 'cloud bridge running'),
      20_000,
      `bridge running (${p.stderr()})`,
    );
    const client = await connectSensor(`mqtt://127.0.0.1:${port}`, undefined, undefined);
    const ev = newEvent();
    await publishEvent(client, ev);
    await publishEvent(client, ev);
    const stored = await eventually(
      () => p.lines.find((l) => l.msg === 'event stored'),
      10_000,
      'event stored line',
    );
    expect(stored).toMatchObject({ eventId: ev.eventId, sensorId: ev.sensorId });
    // The default policy has no contacts: recorded, not a crash.
    await client.endAsync();
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(p.lines.filter((l) => l.msg === 'event stored')).toHaveLength(1);
    expect(p.lines.some((l) => l.msg === 'event store: SQLite' && String(l.path).startsWith(dir.path))).toBe(
      true,
    );
  });

  it('exits 78 (EX_CONFIG, not restarted by systemd) and names the key when the config is invalid', async () => {
    const dir = await tempDir('sw-cli-');
    dirs.push(dir);
    const file = join(dir.path, 'cloud.yaml');
    await writeFile(file, 'offlineAfterS: soon\n');
    const p = run(['--config', file]);
    procs.push(p);
    expect(await p.exit).toBe(78);
    const fatal = p.lines.find((l) => l.msg === 'cloud bridge failed to start');
    expect(fatal).toMatchObject({ code: 'CLOUD_CONFIG_INVALID' });
    expect(String(fatal?.err)).toContain('offlineAfterS');
    expect(String(fatal?.err)).toContain(file);
    expect(p.stderr()).toContain('[CLOUD_CONFIG_INVALID]');
  });

  it('exits 78 on a misspelt key, suggesting the right one (alerts.polices would never alert anyone)', async () => {
    const dir = await tempDir('sw-cli-');
    dirs.push(dir);
    const file = join(dir.path, 'cloud.yaml');
    await writeFile(file, 'alerts:\n  polices:\n    - { contacts: { email: [ops@example.org] } }\n');
    const p = run(['--config', file, '--data-dir', dir.path]);
    procs.push(p);
    expect(await p.exit).toBe(78);
    expect(p.stderr()).toContain('alerts.polices: unknown key (did you mean alerts.policies?)');
    expect(p.lines.some((l) => l.msg === 'cloud bridge running')).toBe(false);
  });

  it('an unreadable mqtt.tls.certFile after the TCP listener is up: closes it, exits 78 with the coded error', async () => {
    const dir = await tempDir('sw-cli-');
    dirs.push(dir);
    const port = await freePort();
    const file = join(dir.path, 'cloud.yaml');
    await writeFile(
      file,
      [
        'mqtt:',
        '  host: 127.0.0.1',
        `  port: ${port}`,
        '  allowAnonymous: true',
        `  tls: { port: 0, certFile: ${join(dir.path, 'missing-cert.pem')}, keyFile: ${join(dir.path, 'missing-key.pem')} }`,
        'web: { host: 127.0.0.1, port: 0 }',
        '',
      ].join('\n'),
    );
    const p = run(['--config', file, '--data-dir', dir.path]);
    procs.push(p);
    // before the fix the plain listener stayed open and the process never exited
    expect(await p.exit).toBe(78);
    const fatal = p.lines.find((l) => l.msg === 'cloud bridge failed to start');
    expect(fatal).toMatchObject({ code: 'CLOUD_TLS_FILE_UNREADABLE' });
    expect(String(fatal?.err)).toContain('missing-cert.pem');
    expect(p.lines.some((l) => l.msg === 'embedded MQTT broker listening')).toBe(false);
  });

  it('exits 2 on an unknown flag', async () => {
    const p = run(['--mqtt-prot', '1']);
    procs.push(p);
    expect(await p.exit).toBe(2);
    expect(p.stderr()).toContain('usage: screamwatch cloud');
  });

  it('hash-password prints an scrypt hash for mqtt.sensors[].passwordHash', async () => {
    const p = run(['hash-password'], {}, 'correct horse battery\n');
    procs.push(p);
    expect(await p.exit).toBe(0);
    const hash = String(p.lines[0]?.raw);
    expect(hash).toMatch(/^scrypt\$/);
    expect(await verifyPassword('correct horse battery', hash)).toBe(true);
  });
});
