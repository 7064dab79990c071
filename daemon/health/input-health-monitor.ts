import type { Logger } from 'pino';
import type { InputHealth } from '../../protocol/messages.ts';
import type { Clock } from '../clock.ts';
import type { DaemonConfig } from '../config/schema.ts';
import { InputHealthClassifier } from './input-health.ts';

export interface InputHealthMonitorOptions {
  thresholds: DaemonConfig['health'];
  source: string;
  clock: Clock;
  logger: Logger;
  /** Every change of state (publish the retained status, update metrics). */
  onChange(health: InputHealth, since: string): void;
}

const CODE: Record<Exclude<InputHealth, 'ok'>, string> = {
  silent: 'INPUT_SILENT',
  stuck: 'INPUT_STUCK',
  clipping: 'INPUT_CLIPPING',
  'no-device': 'INPUT_NO_DEVICE',
};

function describe(h: InputHealth, t: DaemonConfig['health']): string {
  switch (h) {
    case 'silent':
      return `input below ${t.silentFloorDbfs} dBFS for ${t.silentAfterS} s (dead or muted microphone?)`;
    case 'stuck':
      return `every sample identical for ${t.stuckAfterS} s (stuck converter or DC, the microphone hears nothing)`;
    case 'clipping':
      return `at least ${Math.round(t.clipShare * 100)}% of samples at full scale for ${t.clipAfterS} s (gain too high or a faulty microphone)`;
    case 'no-device':
      return `the audio device cannot be opened for ${t.noDeviceAfterS} s; retrying`;
    default:
      return 'input looks like a room again';
  }
}

/**
 * Feeds captured audio to the pure InputHealthClassifier, checks once a second for a device
 * that stays missing (no audio means no push), and logs and reports each change: a coded
 * error when the sensor goes deaf, an info line when it hears again.
 */
export class InputHealthMonitor {
  readonly classifier: InputHealthClassifier;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: InputHealthMonitorOptions) {
    this.classifier = new InputHealthClassifier(options.thresholds, options.clock.now());
  }

  get health(): InputHealth {
    return this.classifier.health;
  }

  get since(): string {
    return new Date(this.classifier.since).toISOString();
  }

  samples(s: Float32Array): void {
    this.report(this.classifier.push(s, this.options.clock.now()));
  }

  deviceFailed(): void {
    this.report(this.classifier.deviceFailed(this.options.clock.now()));
  }

  private report(change: ReturnType<InputHealthClassifier['push']>): void {
    if (!change) return;
    const since = new Date(change.sinceMs).toISOString();
    const text = describe(change.health, this.options.thresholds);
    if (change.health === 'ok') {
      this.options.logger.info(
        { health: 'ok', previous: change.previous, source: this.options.source },
        `input health ok: ${text}`,
      );
    } else {
      this.options.logger.error(
        { code: CODE[change.health], health: change.health, since, source: this.options.source },
        `input health ${change.health} on ${this.options.source}: ${text}`,
      );
    }
    this.options.onChange(change.health, since);
  }

  async start(): Promise<void> {
    if (this.timer) clearInterval(this.timer); // a restarted capture starts it again
    this.timer = setInterval(() => this.report(this.classifier.tick(this.options.clock.now())), 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
