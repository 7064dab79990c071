import type { Logger } from 'pino';
import type {
  EffectiveDetection,
  HeartbeatMessage,
  InputHealth,
  ModelRollback,
  StatusMessage,
} from '../../protocol/messages.ts';
import type { SensorConfig } from '../config/schema.ts';
import type { StoredLocation } from '../store/types.ts';

/** One sensor as the dashboard's fleet page shows it (structurally cloud/web's SensorView). */
export interface SensorView {
  id: string;
  name: string | null;
  room: string | null;
  group: string;
  location: StoredLocation | null;
  status: 'online' | 'offline' | 'unknown';
  /** Configured in `sensors:` (false: only seen on the broker). */
  configured: boolean;
  lastSeen: string | null;
  outboxDepth: number | null;
  inputLevelDbfs: number | null;
  modelVersion: string | null;
  daemonVersion: string | null;
  lastEventAt: string | null;
  droppedFrames: number | null;
  /** The address the sensor last connected from (embedded broker only). */
  ip: string | null;
  /** Sensor-clock timestamp of the last status or heartbeat (the same on every bridge). */
  lastBeaconAt: string | null;
  /**
   * How far the sensor's clock was ahead of the bridge's (negative: behind) at its last
   * heartbeat, in whole seconds (includes transit, normally well under a second).
   */
  clockSkewS?: number | null;
  /** The sensor's input classifier (null: never reported, an older daemon). */
  health?: InputHealth | null;
  /** When `health` began, sensor clock. */
  healthSince?: string | null;
  /** Online but cannot hear: health is reported and is not `ok` (amber in the fleet view). */
  degraded?: boolean;
  /** The detection settings the sensor reported in its last online status (null: not reported). */
  detection?: EffectiveDetection | null;
  /** The sensor's last automatic model rollback, as its online status reports it (null: none). */
  modelRollback?: ModelRollback | null;
}

interface SensorState {
  config: SensorConfig | undefined;
  status: SensorView['status'];
  lastSeenMs: number | null;
  /** Silence is measured from here: the last message, or the registry start for a configured sensor. */
  quietSinceMs: number;
  offlineAlerted: boolean;
  outboxDepth: number | null;
  inputLevelDbfs: number | null;
  modelVersion: string | null;
  daemonVersion: string | null;
  lastEventAt: string | null;
  droppedFrames: number | null;
  ip: string | null;
  lastBeaconAt: string | null;
  clockSkewS: number | null;
  health: InputHealth | null;
  healthSince: string | null;
  /** `${health}|${since}` of the degradation already reported (one alert per episode). */
  degradedReported: string | null;
  detection: EffectiveDetection | null;
  modelRollback: ModelRollback | null;
}

export interface SensorRegistryOptions {
  sensors: SensorConfig[];
  offlineAfterS: number;
  logger: Logger;
  clock?: () => Date;
  /** Called once per silence: the sensor sent nothing for offlineAfterS (a dead sensor is a safety problem). */
  onOffline?: (sensor: SensorView) => void;
  /** Called once per degradation episode (health not ok, keyed by health and since). */
  onDegraded?: (sensor: SensorView) => void;
  /** How often silence is checked; default min(offlineAfterS / 4, 30 s). */
  checkIntervalMs?: number;
}

function configLocation(c: SensorConfig | undefined): StoredLocation | null {
  if (!c?.location) return null;
  return {
    latitude: c.location.latitude,
    longitude: c.location.longitude,
    accuracy: c.location.accuracy,
    address: c.location.address,
    source: 'sensor-config',
    room: c.room,
  };
}

/**
 * Sensors known from config plus those seen on the broker, with their health from status
 * and heartbeat messages. Held in memory: retained status messages and the next heartbeat
 * rebuild it after a restart.
 */
export class SensorRegistry {
  private readonly sensors = new Map<string, SensorState>();
  private readonly clock: () => Date;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: SensorRegistryOptions) {
    this.clock = options.clock ?? (() => new Date());
    const now = this.clock().getTime();
    for (const c of options.sensors) this.sensors.set(c.id, this.fresh(c, now));
  }

  private fresh(config: SensorConfig | undefined, now: number): SensorState {
    return {
      config,
      status: 'unknown',
      lastSeenMs: null,
      quietSinceMs: now,
      offlineAlerted: false,
      outboxDepth: null,
      inputLevelDbfs: null,
      modelVersion: null,
      daemonVersion: null,
      lastEventAt: null,
      droppedFrames: null,
      ip: null,
      lastBeaconAt: null,
      clockSkewS: null,
      health: null,
      healthSince: null,
      degradedReported: null,
      detection: null,
      modelRollback: null,
    };
  }

  async start(): Promise<void> {
    const now = this.clock().getTime();
    for (const s of this.sensors.values()) if (s.lastSeenMs === null) s.quietSinceMs = now;
    const every = this.options.checkIntervalMs ?? Math.min((this.options.offlineAfterS * 1000) / 4, 30_000);
    this.timer = setInterval(() => this.checkOffline(), every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  config(id: string): SensorConfig | undefined {
    return this.sensors.get(id)?.config;
  }

  /**
   * A reloaded `sensors:` list (SIGHUP): new sensors are added, changed ones take their new name,
   * room, location and group at once; what was heard from a sensor (status, last seen) is kept.
   * A sensor no longer listed stays known from what it sends, without a config.
   */
  setConfigs(configs: SensorConfig[]): { added: string[]; removed: string[] } {
    const now = this.clock().getTime();
    const next = new Map(configs.map((c) => [c.id, c]));
    const added: string[] = [];
    const removed: string[] = [];
    for (const [id, c] of next) {
      const s = this.sensors.get(id);
      if (s) {
        if (!s.config) added.push(id);
        s.config = c;
      } else {
        this.sensors.set(id, this.fresh(c, now));
        added.push(id);
      }
    }
    for (const [id, s] of this.sensors) {
      if (s.config && !next.has(id)) {
        s.config = undefined;
        removed.push(id);
      }
    }
    return { added, removed };
  }

  private state(id: string): SensorState {
    let s = this.sensors.get(id);
    if (!s) {
      s = this.fresh(undefined, this.clock().getTime());
      this.sensors.set(id, s);
    }
    return s;
  }

  private heard(id: string): SensorState {
    const s = this.state(id);
    const now = this.clock().getTime();
    s.lastSeenMs = now;
    s.quietSinceMs = now;
    if (s.offlineAlerted) this.options.logger.info({ sensorId: id }, 'sensor back online');
    s.offlineAlerted = false;
    s.status = 'online';
    return s;
  }

  noteConnection(id: string, ip: string | null): void {
    const s = this.state(id);
    if (ip) s.ip = ip;
  }

  noteStatus(m: StatusMessage): void {
    const s = this.heard(m.sensorId);
    s.lastBeaconAt = m.timestamp;
    // An explicit `offline` (the last will, or a clean shutdown) is shown at once; the
    // offline alert still waits for offlineAfterS of silence, so a reboot does not page anyone.
    s.status = m.state;
    if (m.modelVersion) s.modelVersion = m.modelVersion;
    if (m.daemonVersion) s.daemonVersion = m.daemonVersion;
    if (m.state === 'online' && m.detection) s.detection = m.detection;
    if (m.state === 'online') s.modelRollback = m.modelRollback ?? null;
    if (m.state === 'online' && m.health) this.noteHealth(m.sensorId, s, m.health, m.since ?? m.timestamp);
  }

  private noteHealth(id: string, s: SensorState, health: InputHealth, since: string): void {
    const was = s.health;
    s.health = health;
    s.healthSince = since;
    if (health === 'ok') {
      if (was && was !== 'ok')
        this.options.logger.info({ sensorId: id, previous: was }, 'sensor input healthy again');
      s.degradedReported = null;
      return;
    }
    const key = `${health}|${since}`;
    if (s.degradedReported === key) return;
    s.degradedReported = key;
    const view = this.view(id, s);
    this.options.logger.warn(
      { sensorId: id, health, since },
      'sensor degraded: it is online but cannot hear',
    );
    try {
      this.options.onDegraded?.(view);
    } catch (err) {
      this.options.logger.error({ err, sensorId: id }, 'degraded handler failed');
    }
  }

  noteHeartbeat(m: HeartbeatMessage): void {
    const s = this.heard(m.sensorId);
    s.lastBeaconAt = m.timestamp;
    // heard() has just set lastSeenMs to the bridge's now
    const sensorMs = Date.parse(m.timestamp);
    s.clockSkewS = Number.isFinite(sensorMs) ? Math.round((sensorMs - s.lastSeenMs!) / 1000) : null;
    s.outboxDepth = m.outboxDepth;
    s.inputLevelDbfs = m.inputLevelDbfs;
    s.modelVersion = m.modelVersion;
    s.droppedFrames = m.droppedFrames;
    if (m.daemonVersion) s.daemonVersion = m.daemonVersion;
    if (m.health) this.noteHealth(m.sensorId, s, m.health, m.healthSince ?? m.timestamp);
  }

  noteEvent(sensorId: string, timestamp: string, modelVersion?: string): void {
    const s = this.heard(sensorId);
    if (!s.lastEventAt || timestamp > s.lastEventAt) s.lastEventAt = timestamp;
    if (modelVersion) s.modelVersion = modelVersion;
  }

  /** Marks sensors silent for offlineAfterS as offline and reports each silence once. */
  checkOffline(): SensorView[] {
    const now = this.clock().getTime();
    const limit = this.options.offlineAfterS * 1000;
    const newlyOffline: SensorView[] = [];
    for (const [id, s] of this.sensors) {
      if (s.offlineAlerted || now - s.quietSinceMs < limit) continue;
      // A sensor seen once on the broker but not configured still counts: it was working.
      s.offlineAlerted = true;
      s.status = 'offline';
      const view = this.view(id, s);
      newlyOffline.push(view);
      this.options.logger.warn(
        { sensorId: id, lastSeen: view.lastSeen, offlineAfterS: this.options.offlineAfterS },
        'sensor offline',
      );
      try {
        this.options.onOffline?.(view);
      } catch (err) {
        this.options.logger.error({ err, sensorId: id }, 'offline handler failed');
      }
    }
    return newlyOffline;
  }

  private view(id: string, s: SensorState): SensorView {
    return {
      id,
      name: s.config?.name ?? null,
      room: s.config?.room ?? null,
      group: s.config?.group ?? 'default',
      location: configLocation(s.config),
      status: s.status,
      configured: s.config !== undefined,
      lastSeen: s.lastSeenMs === null ? null : new Date(s.lastSeenMs).toISOString(),
      outboxDepth: s.outboxDepth,
      inputLevelDbfs: s.inputLevelDbfs,
      modelVersion: s.modelVersion,
      daemonVersion: s.daemonVersion,
      lastEventAt: s.lastEventAt,
      droppedFrames: s.droppedFrames,
      ip: s.ip,
      lastBeaconAt: s.lastBeaconAt,
      clockSkewS: s.clockSkewS,
      health: s.health,
      healthSince: s.healthSince,
      degraded: s.status === 'online' && s.health !== null && s.health !== 'ok',
      detection: s.detection,
      modelRollback: s.modelRollback,
    };
  }

  list(): SensorView[] {
    return [...this.sensors.entries()]
      .map(([id, s]) => this.view(id, s))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  get(id: string): SensorView | undefined {
    const s = this.sensors.get(id);
    return s ? this.view(id, s) : undefined;
  }
}
