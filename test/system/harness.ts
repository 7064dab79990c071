import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { buildEventMessage } from '../../daemon/detect/event-message.ts';
import { UlidFactory } from '../../protocol/event-id.ts';
import type { EventMessage } from '../../protocol/messages.ts';
import { eventually } from '../support/eventually.ts';
import { mailText, type SmtpHarness } from '../support/smtp.ts';
import type { TwilioEndpoint } from '../support/twilio-endpoint.ts';

/**
 * Real processes for the system suite: the bridge and the daemons run as `node
 * bin/screamwatch.js cloud|daemon`, exactly as installed, and are killed with real signals.
 * Counting is done outside them: what the sensors logged as confirmed, what the store holds,
 * what the SMS endpoint and the SMTP server received.
 */

const BIN = new URL('../../bin/screamwatch.js', import.meta.url).pathname;
export const REPORT_FILE = new URL('../../test-artifacts/system-report.jsonl', import.meta.url).pathname;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Proc {
  readonly child: ChildProcess;
  out = '';
  err = '';
  readonly exited: Promise<number | null>;
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;

  constructor(
    readonly name: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    readonly logFile: string,
  ) {
    this.child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.out += d.toString();
      appendFileSync(logFile, d);
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.err += d.toString();
      appendFileSync(logFile, d);
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        resolve(code);
      }),
    );
  }

  get running(): boolean {
    return this.exitCode === null && this.signal === null;
  }

  async waitFor(re: RegExp, timeoutMs: number): Promise<void> {
    await eventually(
      () => {
        if (re.test(this.out + this.err)) return true;
        if (!this.running)
          throw new Error(`${this.name} exited (${this.exitCode ?? this.signal}): ${this.err.slice(-2000)}`);
        return undefined;
      },
      timeoutMs,
      `${this.name}: ${re}`,
      200,
    );
  }

  kill9(): Promise<number | null> {
    if (this.running) this.child.kill('SIGKILL');
    return this.exited;
  }

  /** SIGTERM, then SIGKILL after budgetMs. */
  async stop(budgetMs = 15_000): Promise<number | null> {
    if (!this.running) return this.exitCode;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), budgetMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  /** Event ids the daemon logged as confirmed (committed to its outbox first). */
  confirmedIds(): string[] {
    const ids: string[] = [];
    for (const line of this.out.split('\n')) {
      if (!line.includes('scream confirmed')) continue;
      try {
        const o = JSON.parse(line) as { eventId?: string };
        if (o.eventId) ids.push(o.eventId);
      } catch {
        // a line cut by kill -9
      }
    }
    return ids;
  }
}

export interface BridgeOptions {
  dir: string;
  mqttPort: number;
  httpPort: number;
  config: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
}

function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('SCREAMWATCH_') && k !== 'MONGODB_URI') env[k] = v;
  return { ...env, ...extra };
}

export function startBridge(o: BridgeOptions, name = 'bridge'): Proc {
  mkdirSync(o.dir, { recursive: true });
  const cfg = join(o.dir, 'cloud.json');
  writeFileSync(cfg, JSON.stringify(o.config, null, 2));
  return new Proc(
    name,
    [
      'cloud',
      '--config',
      cfg,
      '--data-dir',
      join(o.dir, 'data'),
      '--mqtt-port',
      String(o.mqttPort),
      '--http-port',
      String(o.httpPort),
    ],
    baseEnv(o.env),
    join(o.dir, `${name}.log`),
  );
}

export interface DaemonOptions {
  dir: string;
  sensorId: string;
  broker: string;
  password?: string;
  source: string;
  fast?: boolean;
  drainTimeoutS?: number;
  /** detection.modelPath (default: the shipped model). */
  modelPath?: string;
  outboxMaxRows?: number;
  env?: NodeJS.ProcessEnv;
}

export function startDaemon(o: DaemonOptions, name = `daemon-${o.sensorId}`): Proc {
  mkdirSync(o.dir, { recursive: true });
  const cfg = join(o.dir, `${o.sensorId}.json`);
  writeFileSync(
    cfg,
    JSON.stringify({
      sensorId: o.sensorId,
      stateDir: join(o.dir, `state-${o.sensorId}`),
      mqtt: { url: o.broker, username: o.sensorId, password: o.password ?? null },
      heartbeatIntervalS: 5,
      ...(o.modelPath ? { detection: { modelPath: o.modelPath } } : {}),
      ...(o.outboxMaxRows ? { outbox: { maxRows: o.outboxMaxRows } } : {}),
    }),
  );
  const args = [
    'daemon',
    '--config',
    cfg,
    '--source',
    o.source,
    '--drain-timeout',
    String(o.drainTimeoutS ?? 60),
  ];
  if (o.fast !== false) args.push('--fast');
  return new Proc(name, args, baseEnv(o.env), join(o.dir, `${name}.log`));
}

/** Event ids in the bridge's SQLite store, with how many rows each has. */
export function storedIds(dataDir: string): Map<string, number> {
  const file = join(dataDir, 'events.sqlite');
  const out = new Map<string, number>();
  if (!existsSync(file)) return out;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    for (const r of db.prepare('SELECT event_id FROM events').all() as { event_id: string }[])
      out.set(r.event_id, (out.get(r.event_id) ?? 0) + 1);
  } finally {
    db.close();
  }
  return out;
}

export interface AlertJobRow {
  event_id: string;
  channel: string;
  recipient: string;
  kind: string;
  status: string;
  last_error: string | null;
}

export function alertJobs(dataDir: string): AlertJobRow[] {
  const file = join(dataDir, 'alerts.sqlite');
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare('SELECT event_id, channel, recipient, kind, status, last_error FROM jobs')
      .all() as AlertJobRow[];
  } finally {
    db.close();
  }
}

/** The alert jobs of bridges sharing a MongoDB (the wire server's alert_jobs, every database). */
export function mongoAlertJobs(databases: Map<string, Map<string, { docs: Record<string, unknown>[] }>>) {
  const out: (AlertJobRow & { createdAtMs: number; attempts: number })[] = [];
  for (const db of databases.values())
    for (const d of db.get('alert_jobs')?.docs ?? [])
      out.push({
        event_id: String(d.eventId),
        channel: String(d.channel),
        recipient: String(d.recipient),
        kind: String(d.kind),
        status: String(d.status),
        last_error: (d.lastError as string | null) ?? null,
        createdAtMs: Number(d.createdAtMs),
        attempts: Number(d.attempts),
      });
  return out;
}

const EVENT_LINE = /Event:?\s*([0-9A-HJKMNP-TV-Z]{26})/;

/** Alerts the "carriers" accepted, keyed channel|recipient|eventId, with counts. */
export function deliveredAlerts(
  twilio: TwilioEndpoint | null,
  smtp: SmtpHarness | null,
): Map<string, number> {
  const out = new Map<string, number>();
  const add = (k: string) => out.set(k, (out.get(k) ?? 0) + 1);
  for (const r of twilio?.accepted() ?? []) add(`sms|${r.to}|${EVENT_LINE.exec(r.body)?.[1] ?? r.body}`);
  for (const m of smtp?.mails ?? []) {
    const text = mailText(m.raw);
    add(`email|${m.to.join(',')}|${EVENT_LINE.exec(text)?.[1] ?? text.slice(0, 200)}`);
  }
  return out;
}

export interface ScenarioRow {
  scenario: string;
  sent: number;
  stored: number;
  lost: number;
  duplicated: number;
  alertsSent: number;
  duplicatedAlerts: number;
  recoverS: number | null;
  note?: string;
}

export function record(row: ScenarioRow): void {
  mkdirSync(join(REPORT_FILE, '..'), { recursive: true });
  appendFileSync(REPORT_FILE, `${JSON.stringify(row)}\n`);
}

/** Counts for a scenario from what the sensors logged and what the store holds. */
export function tally(sentIds: Iterable<string>, stored: Map<string, number>) {
  const sent = new Set(sentIds);
  let lost = 0;
  for (const id of sent) if (!stored.has(id)) lost++;
  let duplicated = 0;
  for (const n of stored.values()) if (n > 1) duplicated += n - 1;
  return {
    sent: sent.size,
    stored: [...stored.keys()].filter((id) => sent.has(id)).length,
    lost,
    duplicated,
  };
}

export function alertTally(delivered: Map<string, number>) {
  let sent = 0;
  let dup = 0;
  for (const n of delivered.values()) {
    sent += n;
    if (n > 1) dup += n - 1;
  }
  return { alertsSent: sent, duplicatedAlerts: dup };
}

const systemUlids = new UlidFactory();
/** A confirmed scream as a sensor daemon would publish it (the system scenarios' traffic). */
export function systemEvent(sensorId: string, timestampMs = Date.now(), thresholdValue = 0.3): EventMessage {
  return buildEventMessage({
    eventId: systemUlids.next(timestampMs),
    sensorId,
    timestampMs,
    startedAtMs: timestampMs - 1000,
    screamProbability: 0.9,
    isScream: true,
    thresholdValue,
    audioSource: 'alsa:default',
    levelDbfs: -12,
    modelVersion: 'system-test',
    deviceInfo: { hostname: 'pi', daemonVersion: '0.1.0', platform: 'linux-arm64' },
    location: undefined,
    features: undefined,
  });
}
