import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { type DaemonConfig, type DaemonConfigInput, DaemonConfigSchema } from '../../daemon/config/schema.ts';

export interface LogCapture {
  logger: Logger;
  lines: Record<string, unknown>[];
  /** Lines whose msg or code matches. */
  find(pattern: RegExp): Record<string, unknown>[];
}

export function captureLogs(level = 'debug'): LogCapture {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return {
    logger,
    lines,
    find: (re) => lines.filter((l) => re.test(String(l.msg)) || re.test(String(l.code ?? ''))),
  };
}

export async function tempDir(prefix = 'sw-daemon-'): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export function daemonConfig(input: Partial<DaemonConfigInput> & { stateDir: string }): DaemonConfig {
  return DaemonConfigSchema.parse({ sensorId: 'hall-1', log: { level: 'debug' }, ...input });
}

/** Runs cleanups in reverse order; collects, never skips. */
export class Teardown {
  private fns: (() => unknown)[] = [];
  add(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    const errors: unknown[] = [];
    while (this.fns.length) {
      try {
        await this.fns.pop()!();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw errors[0];
  }
}

/** The one polling helper lives in test/support; `until` is its older name here. */
export { eventually as until } from '../support/eventually.ts';
