import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { REPORT_FILE, type ScenarioRow } from './harness.ts';

const HEADERS = [
  'scenario',
  'events sent',
  'stored',
  'lost',
  'duplicated',
  'alerts sent',
  'duplicated alerts',
  'time to recover',
];

/** The scenario table as Markdown (the README shows the latest one). */
export function renderTable(rows: ScenarioRow[]): string {
  const cells = rows.map((r) => [
    r.scenario,
    String(r.sent),
    String(r.stored),
    String(r.lost),
    String(r.duplicated),
    String(r.alertsSent),
    String(r.duplicatedAlerts),
    r.recoverS === null ? '-' : `${r.recoverS.toFixed(1)} s`,
  ]);
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(HEADERS), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join(
    '\n',
  );
}

/** vitest globalSetup: a fresh report per run; the table is printed after the last scenario. */
export default function setup(): () => void {
  rmSync(REPORT_FILE, { force: true });
  return () => {
    if (!existsSync(REPORT_FILE)) return;
    const rows = readFileSync(REPORT_FILE, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ScenarioRow);
    const table = renderTable(rows);
    const notes = rows.filter((r) => r.note).map((r) => `- ${r.scenario}: ${r.note}`);
    writeFileSync(REPORT_FILE.replace(/\.jsonl$/, '.md'), `${table}\n\n${notes.join('\n')}\n`);
    process.stdout.write(
      `\nSystem test report (test-artifacts/system-report.md)\n\n${table}\n${notes.length ? `\n${notes.join('\n')}\n` : ''}`,
    );
  };
}
