import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { syslogPriority, withPriority } from '../../runtime/journald.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

const SCRIPT = (module: string) => `
  const m = await import(${JSON.stringify(module)});
  const log = m.createLogger({ log: { level: 'debug' }, sensorId: 'hall-1' });
  log.debug('d'); log.info('i'); log.warn('w'); log.error({ code: 'ALSA_OPEN_FAILED' }, 'e'); log.fatal('f');
`;

async function daemonLoggerLines(env: NodeJS.ProcessEnv): Promise<string[]> {
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', SCRIPT(`${ROOT}daemon/run.ts`)],
    { cwd: ROOT, env: { ...process.env, ...env } },
  );
  return stdout.trim().split('\n');
}

describe('journald priorities', () => {
  it('maps pino levels to syslog priorities', () => {
    expect([10, 20, 30, 40, 50, 60].map(syslogPriority)).toEqual([7, 7, 6, 4, 3, 2]);
    expect(withPriority('{"level":50,"msg":"x"}\n')).toBe('<3>{"level":50,"msg":"x"}\n');
    expect(withPriority('not json\n')).toBe('<6>not json\n');
  });

  it('under systemd (JOURNAL_STREAM set) every daemon log line carries <N>, so journalctl -p err shows errors only', async () => {
    const lines = await daemonLoggerLines({ JOURNAL_STREAM: '8:123456' });
    expect(lines.map((l) => l.slice(0, 3))).toEqual(['<7>', '<6>', '<4>', '<3>', '<2>']);
    // journald strips the prefix; what follows is the same JSON line
    expect(JSON.parse(lines[3]!.slice(3))).toMatchObject({ level: 50, code: 'ALSA_OPEN_FAILED', msg: 'e' });
    // what `journalctl -p err` keeps (priority <= 3)
    expect(lines.filter((l) => Number(l[1]) <= 3).map((l) => JSON.parse(l.slice(3)).msg)).toEqual(['e', 'f']);
  });

  it('elsewhere (a terminal, a pipe, tests) lines stay plain JSON', async () => {
    const lines = await daemonLoggerLines({ JOURNAL_STREAM: '' });
    expect(lines).toHaveLength(5);
    for (const l of lines) expect(l.startsWith('{')).toBe(true);
  });
});
