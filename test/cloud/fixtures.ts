import type { StoredEvent } from '../../cloud/store/types.ts';
import type { EventMessage } from '../../protocol/messages.ts';

/** A complete stored event with every documented field, for store and web tests. */
export function sampleStoredEvent(over: Partial<StoredEvent> = {}): StoredEvent {
  return {
    eventId: '01KAXT0000AAAAAAAAAAAAAAAA',
    sensorId: 'hall-1',
    timestamp: '2026-11-24T10:00:00.000Z',
    receivedAt: '2026-11-24T10:00:00.250Z',
    startedAt: '2026-11-24T09:59:58.500Z',
    audioSource: 'alsa:plughw:CARD=Device,DEV=0',
    screamProbability: 0.87,
    isScream: true,
    thresholdValue: 0.5,
    levelDbfs: -12.5,
    modelVersion: 'forest-test',
    location: {
      latitude: 48.8566,
      longitude: 2.3522,
      accuracy: 5,
      address: '1 Rue de Rivoli, Paris',
      source: 'sensor-config',
      room: 'Ground floor hall',
    },
    alertType: 'scream',
    responseStatus: 'pending',
    deliveries: [],
    userId: null,
    deviceInfo: { hostname: 'pi-hall', daemonVersion: '0.1.0', platform: 'linux-arm64' },
    features: { rms: 0.2 },
    notes: null,
    error: null,
    review: null,
    ...over,
  };
}

/** A valid protocol event message (what a sensor publishes). */
export function sampleEventMessage(over: Partial<EventMessage> = {}): EventMessage {
  return {
    v: 1,
    eventId: '01KAXT0000AAAAAAAAAAAAAAAA',
    sensorId: 'hall-1',
    timestamp: '2026-11-24T10:00:00.000Z',
    startedAt: '2026-11-24T09:59:58.500Z',
    screamProbability: 0.91,
    isScream: true,
    thresholdValue: 0.5,
    audioSource: 'alsa:plughw:CARD=Device,DEV=0',
    levelDbfs: -9.5,
    modelVersion: 'forest-test',
    deviceInfo: { hostname: 'pi-hall', daemonVersion: '0.1.0', platform: 'linux-arm64' },
    features: { rms: 0.31 },
    ...over,
  };
}
