import L from './leaflet-global.ts';
import 'leaflet.markercluster';
import type { StoredEvent } from '../../store/types.ts';
import { h } from './dom.ts';
import { dateTime, kind, pct } from './format.ts';

const TONE_COLOR: Record<string, string> = {
  danger: '#d43a2f',
  warn: '#d98a00',
  info: '#2a6fdb',
  muted: '#6b7280',
  ok: '#1f9d55',
};

/**
 * A Leaflet map of events. Markers are vector circles (no marker images to fetch), so
 * they still show when the tile server cannot be reached.
 */
export class EventMap {
  private readonly map: L.Map;
  /** Accuracy circles (never clustered: they show how far off a location may be). */
  private readonly layer = L.layerGroup();
  /** Events at one place (a sensor alerting all night) become one bubble with their count. */
  private readonly cluster = L.markerClusterGroup({
    maxClusterRadius: 40,
    showCoverageOnHover: false,
    spiderfyOnMaxZoom: true,
    iconCreateFunction: (c) => {
      const tones = c.getAllChildMarkers().map((m) => (m.options as { tone?: string }).tone ?? 'muted');
      const tone = tones.includes('danger')
        ? 'danger'
        : tones.includes('warn')
          ? 'warn'
          : (tones[0] ?? 'muted');
      const n = c.getChildCount();
      return L.divIcon({
        html: `<span>${n}</span>`,
        className: `event-cluster event-cluster-${tone}`,
        iconSize: L.point(n >= 100 ? 46 : 38, n >= 100 ? 46 : 38),
      });
    },
  });
  /** Once the user pans or zooms, new events no longer move the map under them. */
  private userMoved = false;

  constructor(el: HTMLElement, tileUrl: string) {
    this.map = L.map(el, { zoomControl: true, attributionControl: true, worldCopyJump: true }).setView(
      [20, 0],
      2,
    );
    const tiles = L.tileLayer(tileUrl, {
      maxZoom: 19,
      // OSM's licence asks for this credit; other tile servers are credited by host name
      attribution: /openstreetmap\.(org|fr|de)/.test(tileUrl)
        ? '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
        : `Map tiles: ${escapeText(tileHost(tileUrl))}`,
    }).addTo(this.map);
    // a grey box with dots reads as "no events here"; say when it is the tiles that are missing
    const note = h(
      'div',
      { class: 'map-tiles-note', role: 'status', hidden: true },
      `Map tiles unavailable (cannot load from ${tileHost(tileUrl)}); markers are still placed correctly.`,
    );
    el.append(note);
    let loaded = 0;
    tiles.on('tileerror', () => {
      if (loaded === 0) note.hidden = false;
    });
    tiles.on('tileload', () => {
      loaded += 1;
      note.hidden = true;
    });
    this.layer.addTo(this.map);
    this.cluster.addTo(this.map);
    this.map.on('dragstart', () => {
      this.userMoved = true;
    });
    el.addEventListener(
      'wheel',
      () => {
        this.userMoved = true;
      },
      { passive: true },
    );
  }

  show(
    events: Omit<StoredEvent, 'windows' | 'features'>[],
    opts: { onSelect?: (id: string) => void } = {},
  ): number {
    this.layer.clearLayers();
    this.cluster.clearLayers();
    const markers: L.Layer[] = [];
    const points: L.LatLngExpression[] = [];
    for (const e of [...events].reverse()) {
      const { latitude, longitude } = e.location;
      if (typeof latitude !== 'number' || typeof longitude !== 'number') continue;
      const k = kind(e);
      const color = TONE_COLOR[k.tone] ?? '#6b7280';
      const marker = L.circleMarker([latitude, longitude], {
        radius: 9,
        color: '#fff',
        weight: 2,
        fillColor: color,
        fillOpacity: 0.92,
        className: `event-marker event-marker-${k.tone}`,
        // read by the cluster icon: a bubble with a scream in it is red
        tone: k.tone,
      } as L.CircleMarkerOptions);
      const popup = h(
        'div',
        { class: 'map-popup' },
        h('strong', {}, `${k.label} · ${pct(e.screamProbability)}`),
        h('div', {}, e.location.room ? `${e.sensorId} · ${e.location.room}` : e.sensorId),
        h('div', { class: 'muted' }, dateTime(e.timestamp)),
        h('a', { href: `/events/${encodeURIComponent(e.eventId)}` }, 'Open event →'),
      );
      marker.bindPopup(popup);
      if (opts.onSelect) marker.on('click', () => opts.onSelect?.(e.eventId));
      if (typeof e.location.accuracy === 'number' && e.location.accuracy > 50) {
        L.circle([latitude, longitude], {
          radius: e.location.accuracy,
          color,
          weight: 1,
          fillOpacity: 0.06,
          interactive: false,
        }).addTo(this.layer);
      }
      markers.push(marker);
      points.push([latitude, longitude]);
    }
    this.cluster.addLayers(markers);
    if (points.length > 0 && !this.userMoved) {
      const bounds = L.latLngBounds(points);
      if (!this.map.getBounds().pad(-0.05).contains(bounds) || this.map.getZoom() < 3) {
        this.map.fitBounds(bounds, { padding: [36, 36], maxZoom: 16 });
      }
    }
    return points.length;
  }

  /** A sensor's own place, without events. */
  showPoint(latitude: number, longitude: number, label: string): void {
    L.circleMarker([latitude, longitude], {
      radius: 9,
      color: '#fff',
      weight: 2,
      fillColor: '#2a6fdb',
      fillOpacity: 0.92,
      className: 'sensor-marker',
    })
      .bindTooltip(label)
      .addTo(this.layer);
    this.map.setView([latitude, longitude], 16);
  }

  invalidate(): void {
    this.map.invalidateSize();
  }
}

function tileHost(url: string): string {
  return /^https?:\/\/([^/]+)/.exec(url.replace(/\{s\}\./, ''))?.[1] ?? 'custom tile server';
}

function escapeText(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
