import type { StoredEvent } from '../store/types.ts';

export interface AlertMessage {
  /** Email subject. */
  subject: string;
  /** SMS body and plain-text email. */
  text: string;
  /** HTML email: every value from a sensor or the config is escaped. */
  html: string;
}

export interface SensorLabel {
  id: string;
  name: string | null;
  room: string | null;
}

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

export function osmLink(lat: number, lon: number): string {
  const la = lat.toFixed(6);
  const lo = lon.toFixed(6);
  return `https://www.openstreetmap.org/?mlat=${la}&mlon=${lo}#map=18/${la}/${lo}`;
}

function when(iso: string): string {
  return `${iso.slice(0, 19).replace('T', ' ')} UTC`;
}

function sensorName(s: SensorLabel): string {
  return s.name ? `${s.name} (${s.id})` : s.id;
}

interface Parts {
  headline: string;
  lines: [label: string, value: string, href?: string][];
}

function where(e: StoredEvent): { text: string; href: string | null } {
  const l = e.location;
  const place = [l.room, l.address].filter((p): p is string => !!p).join(', ');
  const href = l.latitude !== null && l.longitude !== null ? osmLink(l.latitude, l.longitude) : null;
  const source =
    l.source === 'sensor-config'
      ? ''
      : ` [location: ${l.source}${l.accuracy ? `, ±${Math.round(l.accuracy)} m` : ''}]`;
  if (place) return { text: place + source, href };
  return { text: href ? `see map${source}` : 'location unknown', href };
}

function render(parts: Parts, eventUrl: string | null): AlertMessage {
  const text = [
    parts.headline,
    ...parts.lines.map(([k, v, href]) => `${k}: ${v}${href ? ` ${href}` : ''}`),
    ...(eventUrl ? [`Details: ${eventUrl}`] : []),
  ].join('\n');
  const rows = parts.lines
    .map(([k, v, href]) => {
      const value = href ? `${escapeHtml(v)} (<a href="${escapeHtml(href)}">map</a>)` : escapeHtml(v);
      return `<tr><th align="left">${escapeHtml(k)}</th><td>${value}</td></tr>`;
    })
    .join('');
  const link = eventUrl ? `<p><a href="${escapeHtml(eventUrl)}">Open the event</a></p>` : '';
  const html = `<!doctype html><html><body><h2>${escapeHtml(parts.headline)}</h2><table>${rows}</table>${link}</body></html>`;
  return { subject: `[Screamwatch] ${parts.headline}`, text, html };
}

export function eventUrlFor(publicUrl: string | null, eventId: string): string | null {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}/events/${encodeURIComponent(eventId)}` : null;
}

/** What, where (address + map link), when, probability, sensor. */
export function screamAlert(e: StoredEvent, sensor: SensorLabel, publicUrl: string | null): AlertMessage {
  const w = where(e);
  const label = sensor.name ?? sensor.id;
  const headline =
    e.alertType === 'manual'
      ? `Alert sent by an operator: scream at ${label}`
      : `Scream detected at ${label}`;
  return render(
    {
      headline,
      lines: [
        ['Where', w.text, ...(w.href ? [w.href] : [])] as Parts['lines'][number],
        ['When', when(e.timestamp)],
        [
          'Probability',
          `${Math.round(e.screamProbability * 100)}% (threshold ${Math.round(e.thresholdValue * 100)}%)`,
        ],
        ['Sensor', sensorName(sensor)],
        ['Event', e.eventId],
      ],
    },
    eventUrlFor(publicUrl, e.eventId),
  );
}

export function followUpAlert(
  first: StoredEvent,
  sensor: SensorLabel,
  summary: { count: number; peak: number; lastAt: string; windowS: number },
  publicUrl: string | null,
): AlertMessage {
  const w = where(first);
  return render(
    {
      headline: `Follow-up: ${summary.count} more detection${summary.count === 1 ? '' : 's'} at ${sensor.name ?? sensor.id}`,
      lines: [
        ['Where', w.text, ...(w.href ? [w.href] : [])] as Parts['lines'][number],
        ['Since', `${when(first.timestamp)} (first alert), last at ${when(summary.lastAt)}`],
        ['Peak probability', `${Math.round(summary.peak * 100)}%`],
        ['Sensor', sensorName(sensor)],
        ['First event', first.eventId],
      ],
    },
    eventUrlFor(publicUrl, first.eventId),
  );
}

export function offlineAlert(
  e: StoredEvent,
  sensor: SensorLabel,
  lastSeen: string | null,
  publicUrl: string | null,
): AlertMessage {
  const w = where(e);
  return render(
    {
      headline: `Sensor offline: ${sensor.name ?? sensor.id}`,
      lines: [
        ['Where', w.text, ...(w.href ? [w.href] : [])] as Parts['lines'][number],
        ['Last heard', lastSeen ? when(lastSeen) : 'never since the bridge started'],
        ['Sensor', sensorName(sensor)],
      ],
    },
    eventUrlFor(publicUrl, e.eventId),
  );
}

const HEALTH_TEXT: Record<string, string> = {
  silent: 'the microphone hears only silence (dead, muted or unplugged inside?)',
  stuck: 'the microphone sends one constant value (stuck converter)',
  clipping: 'the input is clipping (gain too high or a faulty microphone)',
  'no-device': 'the audio device cannot be opened (microphone missing or unplugged)',
};

/** The sensor is online but cannot hear: it would miss a scream. */
export function degradedAlert(
  e: StoredEvent,
  sensor: SensorLabel,
  health: string,
  since: string | null,
  publicUrl: string | null,
): AlertMessage {
  const w = where(e);
  return render(
    {
      headline: `Sensor cannot hear (${health}): ${sensor.name ?? sensor.id}`,
      lines: [
        ['Where', w.text, ...(w.href ? [w.href] : [])] as Parts['lines'][number],
        ['Problem', HEALTH_TEXT[health] ?? health],
        ['Since', since ? when(since) : 'unknown'],
        ['Sensor', sensorName(sensor)],
      ],
    },
    eventUrlFor(publicUrl, e.eventId),
  );
}

export function escalationAlert(
  e: StoredEvent,
  sensor: SensorLabel,
  afterS: number,
  publicUrl: string | null,
): AlertMessage {
  const m = screamAlert(e, sensor, publicUrl);
  const prefix = `ESCALATION (not acknowledged after ${Math.round(afterS)} s): `;
  return {
    subject: `[Screamwatch] ${prefix}${m.subject.slice('[Screamwatch] '.length)}`,
    text: prefix + m.text,
    html: m.html.replace('<h2>', `<h2>${escapeHtml(prefix)}`),
  };
}
