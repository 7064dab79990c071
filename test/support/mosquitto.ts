import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';

export interface MosquittoOptions {
  /** Listen on this port (to restart a broker where clients expect it); default a free one. */
  port?: number;
  /** A mosquitto_passwd file (see `writePasswordFile`); anonymous clients are then refused. */
  passwordFile?: string;
  aclFile?: string;
  /**
   * Keep sessions and queued messages in this folder across a restart (SIGTERM saves them):
   * a broker that goes down and comes back, as in production.
   */
  persistenceDir?: string;
  /** Appended to the generated mosquitto.conf verbatim (TLS listeners, limits...). */
  configExtra?: string;
  /** Milliseconds to wait for the port to accept connections. */
  startTimeoutMs?: number;
}

export interface MosquittoHarness {
  url: string;
  port: number;
  /** Everything Mosquitto logged (stderr), for assertions and failure messages. */
  log(): string;
  /** SIGTERM, then SIGKILL after 3 s; removes the generated config directory. */
  stop(): Promise<void>;
}

/**
 * Debian's Mosquitto on 127.0.0.1 with a generated config (no persistence, logs to stderr).
 * Mosquitto cannot listen on port 0, so a free port is picked first.
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoHarness> {
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'sw-mosquitto-'));
  const conf = [
    `listener ${port} 127.0.0.1`,
    options.persistenceDir
      ? `persistence true\npersistence_location ${options.persistenceDir}/`
      : 'persistence false',
    // Run as root (CI containers), Mosquitto would drop to the `mosquitto` user, which cannot
    // read the test's 0700 temp dirs; keep the invoking user instead.
    process.getuid?.() === 0 ? 'user root' : '',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    options.passwordFile ? `password_file ${options.passwordFile}` : 'allow_anonymous true',
    options.passwordFile ? 'allow_anonymous false' : '',
    options.aclFile ? `acl_file ${options.aclFile}` : '',
    options.configExtra ?? '',
  ].join('\n');
  const confPath = join(dir, 'mosquitto.conf');
  await writeFile(confPath, `${conf}\n`);

  let output = '';
  const child: ChildProcess = spawn('mosquitto', ['-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  const deadline = Date.now() + (options.startTimeoutMs ?? 5000);
  while (!(await canConnect(port))) {
    if (hasExited || Date.now() > deadline) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`mosquitto did not start on 127.0.0.1:${port}: ${output.trim() || 'no output'}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  let stopped: Promise<void> | null = null;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    log: () => output,
    stop() {
      stopped ??= (async () => {
        if (!hasExited) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** Writes a Mosquitto password file with hashed entries (mosquitto_passwd -b). */
export async function writePasswordFile(path: string, users: Record<string, string>): Promise<string> {
  const run = promisify(execFile);
  await writeFile(path, '');
  for (const [user, password] of Object.entries(users)) {
    await run('mosquitto_passwd', ['-b', path, user, password]);
  }
  return path;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
