import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ScreamModel } from '../../core/model/scream-model.ts';
import type { CommandRecord } from '../control/command-log.ts';
import type { ModelLibrary } from '../control/model-library.ts';
import type { ModelRollouts } from '../control/model-rollout.ts';
import type { CommandRequest } from '../control/sensor-control.ts';
import type { SensorHistoryView } from '../ingest/sensor-history.ts';
import type { SensorView as RegistrySensorView } from '../ingest/sensor-registry.ts';
import type { EventChanges } from '../store/observed-store.ts';
import type { ChannelDelivery, EventStore, StoredEvent, StoredLocation } from '../store/types.ts';
import type { AnalysisStats } from './analysis-pool.ts';

export type UserRole = 'admin' | 'viewer';

export interface WebUser {
  username: string;
  /** `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>`, made by `hashPassword()` (cloud/auth/passwords.ts). */
  passwordHash: string;
  role: UserRole;
}

export interface WebConfig {
  host: string;
  port: number;
  /** The URL users reach the dashboard at (behind a proxy); https makes session cookies Secure. */
  publicUrl: string | null;
  users: WebUser[];
  /** Signs session cookies; null: generated once and kept in dataDir. */
  sessionSecret: string | null;
  /** Leaflet tile template, e.g. `https://tile.openstreetmap.org/{z}/{x}/{y}.png`. */
  tileUrl: string;
  maxUploadBytes: number;
  /** Longest decoded audio an upload may have (default 600 s). */
  maxAnalysisSeconds?: number;
  dataDir: string;
}

/** One sensor as the fleet page shows it: the registry's view (cloud/ingest/sensor-registry.ts), these fields. */
export type SensorView = Pick<
  RegistrySensorView,
  | 'id'
  | 'name'
  | 'room'
  | 'location'
  | 'status'
  | 'lastSeen'
  | 'outboxDepth'
  | 'inputLevelDbfs'
  | 'modelVersion'
  | 'lastEventAt'
  | 'droppedFrames'
  | 'health'
  | 'healthSince'
  | 'clockSkewS'
  | 'degraded'
  | 'detection'
  | 'modelRollback'
>;

export interface SensorRegistryView {
  list(): SensorView[];
  get(id: string): SensorView | undefined;
}

/** The bridge's control plane as the dashboard uses it (cloud/control/sensor-control.ts). */
export interface SensorCommands {
  send(sensorId: string, request: CommandRequest, issuedBy: string): Promise<CommandRecord>;
  list(sensorId: string, limit: number): Promise<CommandRecord[]>;
  subscribe(fn: (record: CommandRecord) => void): () => void;
}

/** Model files and rollouts (cloud/control/model-library.ts, model-rollout.ts). */
export interface ModelRolloutDeps {
  library: Pick<ModelLibrary, 'list' | 'get' | 'upload' | 'open'>;
  rollouts: Pick<ModelRollouts, 'start' | 'list' | 'get'>;
  /** The configured sensors of a group (sensors[].group). */
  group(name: string): string[];
  maxUploadBytes: number;
}

export interface ManualAlerts {
  sendManualAlert(eventId: string, userId: string): Promise<{ deliveries: ChannelDelivery[] }>;
}

export interface WebDeps {
  /** The bridge's readiness checks for /healthz (503 when one fails); absent: always ready. */
  readiness?: () => Promise<Record<string, { ok: boolean; detail?: string }>>;
  config: WebConfig;
  store: EventStore;
  /** What tells the live stream that events were stored or changed (an ObservedEventStore);
   * without it the stream carries sensor changes only and pages fall back to polling for events. */
  changes?: EventChanges;
  registry: SensorRegistryView;
  /** Per-sensor heartbeat buckets and state periods (the bridge's SensorHistory); absent: none. */
  history?: SensorHistoryView;
  alerts: ManualAlerts;
  /** Commands to sensors (set-detection, ping, reload) and their audit list; absent: none. */
  control?: SensorCommands;
  /** Model upload, signed downloads for sensors, batch rollouts; absent: none. */
  models?: ModelRolloutDeps;
  /** Stores (and alerts on) an event made on the dashboard: a live browser detection or an upload. */
  ingestLocal?: (event: StoredEvent) => Promise<void>;
  /** The server's IP geolocation, used when the browser does not share its position. */
  locateIp?: (ip: string) => Promise<StoredLocation | null>;
  model: ScreamModel;
  logger: Logger;
  clock?: () => Date;
}

export interface WebService {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** `http://host:port` once started (the real port when config.port is 0). */
  readonly url: string;
  readonly app: FastifyInstance;
  /** The upload analysis pool's slots and counts (metrics). */
  analysisStats(): AnalysisStats;
}
