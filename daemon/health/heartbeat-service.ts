import type { HeartbeatMessage, InputHealth } from '../../protocol/messages.ts';
import { PROTOCOL_VERSION } from '../../protocol/messages.ts';
import type { Clock } from '../clock.ts';
import { DAEMON_VERSION } from '../version.ts';

export interface HeartbeatFacts {
  outboxDepth: number;
  outboxFull: boolean;
  outboxWritable?: boolean;
  outboxLost?: number;
  droppedFrames: number;
  inputLevelDbfs: number;
  lastMaxProbability: number;
  health?: { health: InputHealth; since: string };
}

export interface HeartbeatServiceOptions {
  sensorId: string;
  modelVersion: string;
  intervalS: number;
  clock: Clock;
  facts(): HeartbeatFacts;
  emit(message: HeartbeatMessage): void;
}

/** Periodic health; CPU % is of one core, averaged since the previous heartbeat. */
export class HeartbeatService {
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAtMs: number;
  private lastCpu = process.cpuUsage();
  private lastAt = performance.now();
  private modelVersion: string;

  constructor(private readonly options: HeartbeatServiceOptions) {
    this.startedAtMs = options.clock.now();
    this.modelVersion = options.modelVersion;
  }

  /** The model in force after a set-model swap (the next heartbeat reports it). */
  setModelVersion(version: string): void {
    this.modelVersion = version;
  }

  async start(): Promise<void> {
    this.timer = setInterval(() => this.beat(), this.options.intervalS * 1000);
    this.timer.unref();
  }

  cpuPercent(): number {
    const cpu = process.cpuUsage(this.lastCpu);
    const now = performance.now();
    const wallMs = Math.max(1, now - this.lastAt);
    this.lastCpu = process.cpuUsage();
    this.lastAt = now;
    return Math.round(((cpu.user + cpu.system) / 1000 / wallMs) * 1000) / 10;
  }

  message(): HeartbeatMessage {
    const f = this.options.facts();
    return {
      v: PROTOCOL_VERSION,
      sensorId: this.options.sensorId,
      timestamp: new Date(this.options.clock.now()).toISOString(),
      uptimeS: Math.max(0, Math.round((this.options.clock.now() - this.startedAtMs) / 1000)),
      outboxDepth: f.outboxDepth,
      outboxFull: f.outboxFull,
      droppedFrames: f.droppedFrames,
      inputLevelDbfs: Math.min(10, Math.max(-200, Math.round(f.inputLevelDbfs * 10) / 10)),
      lastMaxProbability: Math.min(1, Math.max(0, f.lastMaxProbability)),
      cpuPercent: this.cpuPercent(),
      rssBytes: process.memoryUsage.rss(),
      modelVersion: this.modelVersion.slice(0, 100),
      daemonVersion: DAEMON_VERSION,
      ...(f.outboxWritable !== undefined && { outboxWritable: f.outboxWritable }),
      ...(f.outboxLost !== undefined && { outboxLost: f.outboxLost }),
      ...(f.health && { health: f.health.health, healthSince: f.health.since }),
    };
  }

  beat(): void {
    this.options.emit(this.message());
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
