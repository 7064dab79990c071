import { hostname } from 'node:os';
import type { z } from 'zod';
import { WINDOW_FEATURE_NAMES } from '../../core/features/window-features.ts';
import type {
  DeviceInfoSchema,
  EventMessage,
  SensorLocationSchema,
  TimelineWindow,
} from '../../protocol/messages.ts';
import { MAX_TIMELINE_WINDOWS, PROTOCOL_VERSION } from '../../protocol/messages.ts';
import type { DaemonConfig } from '../config/schema.ts';
import { DAEMON_VERSION } from '../version.ts';

export type DeviceInfo = z.infer<typeof DeviceInfoSchema>;
export type SensorLocation = z.infer<typeof SensorLocationSchema>;

export function deviceInfo(): DeviceInfo {
  return {
    hostname: hostname().slice(0, 255),
    daemonVersion: DAEMON_VERSION,
    platform: `${process.platform}-${process.arch} node-${process.versions.node}`,
  };
}

/** The location configured on the sensor, when it has coordinates. */
export function sensorLocation(location: DaemonConfig['location']): SensorLocation | undefined {
  if (location.latitude === null || location.longitude === null) return undefined;
  const out: SensorLocation = { latitude: location.latitude, longitude: location.longitude };
  if (location.accuracy !== null) out.accuracy = location.accuracy;
  const address = [location.address, location.room].filter((x): x is string => !!x).join(', ');
  if (address) out.address = address.slice(0, 500);
  return out;
}

/** The peak window's features as {name: value}, finite values only, 6 significant digits. */
export function featureSummary(values: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  WINDOW_FEATURE_NAMES.forEach((name, i) => {
    const v = values[i];
    if (v !== undefined && Number.isFinite(v)) out[name] = Number(v.toPrecision(6));
  });
  return out;
}

export interface EventFacts {
  eventId: string;
  sensorId: string;
  timestampMs: number;
  startedAtMs: number;
  screamProbability: number;
  isScream: boolean;
  thresholdValue: number;
  audioSource: string;
  levelDbfs: number;
  modelVersion: string;
  deviceInfo: DeviceInfo;
  location: SensorLocation | undefined;
  features: Float64Array | undefined;
  notes?: string;
  /** Window scores up to the confirmation (`t` s relative to it); rounded here for the wire. */
  timeline?: TimelineWindow[];
}

export function buildEventMessage(f: EventFacts): EventMessage {
  const msg: EventMessage = {
    v: PROTOCOL_VERSION,
    eventId: f.eventId,
    sensorId: f.sensorId,
    timestamp: new Date(f.timestampMs).toISOString(),
    startedAt: new Date(Math.min(f.startedAtMs, f.timestampMs)).toISOString(),
    screamProbability: clamp(f.screamProbability, 0, 1),
    isScream: f.isScream,
    thresholdValue: clamp(f.thresholdValue, 0, 1),
    audioSource: f.audioSource.slice(0, 300),
    levelDbfs: wireLevel(f.levelDbfs),
    modelVersion: f.modelVersion.slice(0, 100),
    deviceInfo: f.deviceInfo,
  };
  if (f.location) msg.location = f.location;
  if (f.features) msg.features = featureSummary(f.features);
  if (f.notes) msg.notes = f.notes.slice(0, 2000);
  if (f.timeline?.length) msg.timeline = wireTimeline(f.timeline);
  return msg;
}

/** A timeline as the protocol carries it (the event's and the evidence message's): ms, 1e-4, 0.1 dB. */
export function wireTimeline(timeline: TimelineWindow[]): TimelineWindow[] {
  return timeline.slice(-MAX_TIMELINE_WINDOWS).map((w) => ({
    t: Math.round(w.t * 1000) / 1000,
    p: Math.round(clamp(w.p, 0, 1) * 1e4) / 1e4,
    levelDbfs: wireLevel(w.levelDbfs),
  }));
}

/** A level as the protocol carries it: dBFS to 0.1 dB within [-200, 10]; not finite = -200. */
function wireLevel(dbfs: number): number {
  return Number.isFinite(dbfs) ? clamp(Math.round(dbfs * 10) / 10, -200, 10) : -200;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}
