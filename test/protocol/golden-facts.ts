import type { EventFacts } from '../../daemon/detect/event-message.ts';

/**
 * The inputs the golden messages are built from. Fixed values, so encoding today's
 * objects must reproduce test/protocol/golden/*.json exactly.
 */
export const GOLDEN_SENSOR_ID = 'hall-1';
export const GOLDEN_NOW_MS = Date.parse('2026-03-14T09:26:53.589Z');

export const GOLDEN_DEVICE_INFO = {
  hostname: 'hall-1',
  daemonVersion: '0.1.0',
  platform: 'linux-arm64 node-20.19.0',
};

/** The feature names the event fixture carries (the model's list is the detect module's). */
export const GOLDEN_FEATURE_NAMES = ['mfcc1Mean', 'mfcc2Std', 'chromaStability', 'zcrMean'];

export function goldenEventFacts(): EventFacts {
  return {
    eventId: '01JPDQ8W3Z4K7M9N2P5R8T0V6X',
    sensorId: GOLDEN_SENSOR_ID,
    timestampMs: GOLDEN_NOW_MS,
    startedAtMs: GOLDEN_NOW_MS - 1536,
    screamProbability: 0.97,
    isScream: true,
    thresholdValue: 0.8,
    audioSource: 'alsa:plughw:CARD=Device,DEV=0',
    levelDbfs: -23.46,
    modelVersion: 'forest-2026-03-01-a1b2c3d',
    deviceInfo: GOLDEN_DEVICE_INFO,
    location: {
      latitude: 52.0907,
      longitude: 5.1214,
      accuracy: 10,
      address: '1 Example Street, Utrecht, Main hall',
    },
    features: new Float64Array([-312.4567891, 14.25, 0.8123456789, 0.0625]),
    notes: 'clip kept on the sensor (hall-1): /var/lib/screamwatch/clips/01JPDQ8W3Z4K7M9N2P5R8T0V6X.wav',
    timeline: [
      { t: -1.024, p: 0.1203, levelDbfs: -41.2 },
      { t: -0.512, p: 0.8841, levelDbfs: -24.9 },
      { t: 0, p: 0.97, levelDbfs: -23.5 },
    ],
  };
}

/** A near-miss report: only the fields every event must have. */
export function goldenReportFacts(): EventFacts {
  return {
    ...goldenEventFacts(),
    eventId: '01JPDQ9A0B1C2D3E4F5G6H7J8K',
    screamProbability: 0.71,
    isScream: false,
    location: undefined,
    features: undefined,
    notes: '',
    timeline: [],
  };
}
