/**
 * Under systemd, stdout goes to the journal, and journald reads a leading `<N>` on each line
 * as its syslog priority (sd-daemon(3), SyslogLevelPrefix=yes is the default). Prefixing every
 * pino line with the priority of its level makes `journalctl -p err -u screamwatch-daemon`
 * show errors only; without the prefix every line is "info".
 *
 * systemd sets JOURNAL_STREAM (device:inode of the stream) when stdout or stderr is connected
 * to the journal; anywhere else (a terminal, a pipe, tests) lines stay plain JSON.
 */

/** pino's numeric levels -> syslog priorities (RFC 5424: 2 crit, 3 err, 4 warning, 6 info, 7 debug). */
export function syslogPriority(pinoLevel: number): number {
  if (pinoLevel >= 60) return 2; // fatal
  if (pinoLevel >= 50) return 3; // error
  if (pinoLevel >= 40) return 4; // warn
  if (pinoLevel >= 30) return 6; // info
  return 7; // debug, trace
}

const LEVEL = /"level":(\d+)/;

/** `<N>` + line, N from the line's `"level":` (pino puts it first); 6 when there is none. */
export function withPriority(line: string): string {
  const m = LEVEL.exec(line.slice(0, 64));
  return `<${syslogPriority(m ? Number(m[1]) : 30)}>${line}`;
}

export interface LineSink {
  write(line: string): unknown;
}

/** Whether stdout is the journal (JOURNAL_STREAM matches stdout's device:inode, or is just set). */
export function underJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  return typeof env.JOURNAL_STREAM === 'string' && env.JOURNAL_STREAM.length > 0;
}

/** Wraps a pino destination so that each line carries its journald priority when under systemd. */
export function journaldAware<T extends LineSink>(
  dest: T,
  env: NodeJS.ProcessEnv = process.env,
): T | LineSink {
  if (!underJournal(env)) return dest;
  return { write: (line: string) => dest.write(withPriority(line)) };
}
