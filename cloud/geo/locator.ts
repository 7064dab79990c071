import { isIP } from 'node:net';
import maxmind, { type CityResponse, type Reader } from 'maxmind';
import type { Logger } from 'pino';
import type { EventMessage } from '../../protocol/messages.ts';

type SensorLocation = NonNullable<EventMessage['location']>;

import type { SensorConfig } from '../config/schema.ts';
import { CloudError } from '../errors.ts';
import type { StoredLocation } from '../store/types.ts';

export interface LocateInput {
  sensor?: SensorConfig | undefined;
  /** The location the device sent with the event. */
  device?: SensorLocation | undefined;
  /** The sensor's public IP, when the broker saw it or the config names it. */
  ip?: string | null | undefined;
}

export const UNKNOWN_LOCATION: StoredLocation = {
  latitude: null,
  longitude: null,
  accuracy: null,
  address: null,
  source: 'unknown',
};

/**
 * Where an event happened, in order of trust: the sensor's configured location (fixed
 * sensors), the location the device sent, an offline IP database (never an online service:
 * a sensor's address must not leave the installation), else unknown. Never a made-up 0,0.
 */
export class Geolocator {
  private reader: Reader<CityResponse> | null = null;

  constructor(private readonly options: { ipDatabase: string | null; logger: Logger }) {}

  async start(): Promise<void> {
    const path = this.options.ipDatabase;
    if (!path) return;
    try {
      // watchForUpdates off: the reader is reopened on restart; a watcher would keep the process alive.
      this.reader = await maxmind.open<CityResponse>(path, { watchForUpdates: false });
    } catch (err) {
      throw new CloudError(
        'CLOUD_GEO_DATABASE',
        `geo.ipDatabase: cannot open ${path}: ${(err as Error).message}`,
        { path },
        { cause: err },
      );
    }
    this.options.logger.info(
      { path, type: this.reader.metadata.databaseType },
      'IP geolocation database loaded',
    );
  }

  async stop(): Promise<void> {
    this.reader = null;
  }

  /** Looks an IP up in the offline database; null when there is none or it has no entry. */
  locateIp(ip: string): StoredLocation | null {
    if (!this.reader) return null;
    const addr = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    if (!isIP(addr)) return null;
    let hit: CityResponse | null;
    try {
      hit = this.reader.get(addr);
    } catch {
      return null;
    }
    const loc = hit?.location;
    if (!loc || typeof loc.latitude !== 'number' || typeof loc.longitude !== 'number') return null;
    const parts = [
      hit?.city?.names?.en,
      hit?.subdivisions?.[0]?.names?.en,
      hit?.country?.names?.en ?? hit?.country?.iso_code,
    ].filter((p): p is string => typeof p === 'string' && p.length > 0);
    return {
      latitude: loc.latitude,
      longitude: loc.longitude,
      // accuracy_radius is in km; city-level databases without it are good to ~25 km at best.
      accuracy: typeof loc.accuracy_radius === 'number' ? loc.accuracy_radius * 1000 : 25_000,
      address: parts.length ? parts.join(', ') : null,
      source: 'ip-database',
    };
  }

  locate(input: LocateInput): StoredLocation {
    const room = input.sensor?.room ?? null;
    const c = input.sensor?.location;
    if (c) {
      return {
        latitude: c.latitude,
        longitude: c.longitude,
        accuracy: c.accuracy,
        address: c.address,
        source: 'sensor-config',
        room,
      };
    }
    const d = input.device;
    if (d) {
      return {
        latitude: d.latitude,
        longitude: d.longitude,
        accuracy: d.accuracy ?? null,
        address: d.address ?? null,
        source: 'device',
        room,
      };
    }
    const ip = input.sensor?.publicIp ?? input.ip ?? null;
    const byIp = ip ? this.locateIp(ip) : null;
    if (byIp) return { ...byIp, room };
    return { ...UNKNOWN_LOCATION, room };
  }
}
